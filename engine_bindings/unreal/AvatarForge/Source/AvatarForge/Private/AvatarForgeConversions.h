// Between the Blueprint types (AvatarForgeTypes.h) and the engine-agnostic client's plain C++ types.
#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeTypes.h"

THIRD_PARTY_INCLUDES_START
#include "avatarforge/client.h"
THIRD_PARTY_INCLUDES_END

#include <exception>
#include <string>

namespace AvatarForge
{
FString ToFString(const std::string& Utf8);
std::string ToStd(const FString& Text);
TArray<uint8> ToBytes(const std::string& Bytes);
std::string ToStdBytes(TConstArrayView<uint8> Bytes);

avatarforge::ClientOptions ToClient(const FAvatarForgeConnectionSettings& Settings, FString& OutError, bool& bOk);
avatarforge::Camera ToClient(const FAvatarForgeOrbitCamera& Camera);
avatarforge::Expression ToClient(const FAvatarForgeExpression& Expression);
avatarforge::HeadPose ToClient(const FAvatarForgeHeadPose& Pose);
avatarforge::FrameOptions ToClient(const FAvatarForgeFrameOptions& Options);
avatarforge::StreamMode ToClient(EAvatarForgeStreamMode Mode);
avatarforge::ExportFormat ToClient(EAvatarForgeExportFormat Format);
/** Reads the animation source files; false with OutError when one cannot be read. */
bool ToClient(const FAvatarForgeExportOptions& Options, avatarforge::ExportOptions& Out, FString& OutError);

/** Thumbnail PNG bytes go to OutThumbnailPng; the texture is made on the game thread. */
FAvatarForgeAvatarInfo FromClient(const avatarforge::AvatarInfo& Info, TArray<uint8>* OutThumbnailPng);
FAvatarForgeProgress FromClient(const avatarforge::Progress& Progress);
FAvatarForgeServerInfo FromClient(const avatarforge::ServerInfo& Info);
TArray<FAvatarForgeTrackedFace> FromClient(const avatarforge::TrackResult& Result);

/** "CODE: sentence" for a client error, the what() of anything else. */
FString DescribeError(const std::exception& Error);

/** Runs Fn, turning any exception into OutError; returns whether Fn completed. */
template <typename FnType>
bool RunGuarded(FnType&& Fn, FString& OutError)
{
	try
	{
		Fn();
		return true;
	}
	catch (const std::exception& Error)
	{
		OutError = DescribeError(Error);
	}
	catch (...)
	{
		OutError = TEXT("AvatarForge: unknown failure in the client");
	}
	return false;
}
}
