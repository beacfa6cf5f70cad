#include "AvatarForgeSettings.h"

#include "HAL/PlatformMisc.h"
#include "Misc/Paths.h"

UAvatarForgeSettings::UAvatarForgeSettings()
{
	BakeContentPath.Path = TEXT("/Game/AvatarForge");
}

FName UAvatarForgeSettings::GetCategoryName() const
{
	return TEXT("Plugins");
}

FAvatarForgeConnectionSettings UAvatarForgeSettings::ToConnectionSettings() const
{
	auto Absolute = [](const FFilePath& File) -> FString
	{
		if (File.FilePath.IsEmpty())
		{
			return FString();
		}
		return FPaths::IsRelative(File.FilePath) ? FPaths::ConvertRelativePathToFull(FPaths::ProjectDir(), File.FilePath) : File.FilePath;
	};

	FAvatarForgeConnectionSettings Out;
	Out.ServerAddress = ServerAddress;
	Out.Token = Token.IsEmpty() ? FPlatformMisc::GetEnvironmentVariable(TEXT("AVATARFORGE_TOKEN")) : Token;
	Out.bUseTls = bUseTls;
	Out.RootCertificatesFile = Absolute(RootCertificatesFile);
	Out.ClientCertificateFile = Absolute(ClientCertificateFile);
	Out.ClientKeyFile = Absolute(ClientKeyFile);
	Out.ServerNameOverride = ServerNameOverride;
	Out.CallTimeoutSeconds = CallTimeoutSeconds;
	return Out;
}
