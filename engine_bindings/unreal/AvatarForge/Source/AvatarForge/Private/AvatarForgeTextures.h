// Frames and thumbnails into UTexture2D: decoding on any thread, texture work on the game thread.
#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeConversions.h"

class UTexture2D;

namespace AvatarForge
{
/** A decoded frame ready for upload: RGBA8, top row first (Unreal's texture row order). */
struct FDecodedFrame
{
	TArray<uint8> Pixels;
	FAvatarForgeFrameInfo Info;
};

/** Any thread: decodes RAW_RGBA8 / PNG / JPEG (+ a separate alpha plane) into RGBA8. */
bool DecodeFrame(const avatarforge::Frame& Frame, FDecodedFrame& Out, FString& OutError);

/** Game thread: a transient RGBA8 texture of the given size, reusing Existing when it matches. */
UTexture2D* EnsureFrameTexture(UTexture2D* Existing, int32 Width, int32 Height);

/** Game thread: queues Pixels (RGBA8, Width*Height*4) for upload; the render thread frees them. */
void UploadPixels(UTexture2D* Texture, TArray<uint8>&& Pixels, int32 Width, int32 Height);

/** Game thread: a texture from PNG bytes, or nullptr when there are none or they do not decode. */
UTexture2D* TextureFromPng(const TArray<uint8>& Png);
}
