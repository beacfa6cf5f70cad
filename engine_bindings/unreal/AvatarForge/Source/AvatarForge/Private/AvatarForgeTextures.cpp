#include "AvatarForgeTextures.h"

#include "Engine/Texture2D.h"
#include "IImageWrapper.h"
#include "IImageWrapperModule.h"
#include "ImageUtils.h"
#include "Modules/ModuleManager.h"
#include "RenderingThread.h"
#include "TextureResource.h"

namespace AvatarForge
{
namespace
{
bool DecodeCompressed(const std::string& Bytes, EImageFormat Format, int32 ExpectedWidth, int32 ExpectedHeight, TArray<uint8>& Out,
	FString& OutError)
{
	// Loaded on the game thread at module startup, so this lookup is safe from the reader thread.
	IImageWrapperModule& Module = FModuleManager::GetModuleChecked<IImageWrapperModule>(TEXT("ImageWrapper"));
	TSharedPtr<IImageWrapper> Wrapper = Module.CreateImageWrapper(Format);
	if (!Wrapper.IsValid() || !Wrapper->SetCompressed(Bytes.data(), static_cast<int64>(Bytes.size())))
	{
		OutError = TEXT("AvatarForge: the frame's image data does not decode");
		return false;
	}
	if (Wrapper->GetWidth() != ExpectedWidth || Wrapper->GetHeight() != ExpectedHeight)
	{
		OutError = FString::Printf(TEXT("AvatarForge: the frame says %dx%d but its image is %lldx%lld"), ExpectedWidth, ExpectedHeight,
			Wrapper->GetWidth(), Wrapper->GetHeight());
		return false;
	}
	TArray64<uint8> Raw;
	if (!Wrapper->GetRaw(ERGBFormat::RGBA, 8, Raw))
	{
		OutError = TEXT("AvatarForge: the frame's image data does not decode to RGBA8");
		return false;
	}
	Out = TArray<uint8>(Raw.GetData(), static_cast<int32>(Raw.Num()));
	return true;
}
}

bool DecodeFrame(const avatarforge::Frame& Frame, FDecodedFrame& Out, FString& OutError)
{
	const int32 Width = static_cast<int32>(Frame.width);
	const int32 Height = static_cast<int32>(Frame.height);
	const int64 PixelCount = static_cast<int64>(Width) * Height;
	if (Width <= 0 || Height <= 0 || PixelCount > 2048 * 2048)
	{
		OutError = FString::Printf(TEXT("AvatarForge: frame has an invalid size %dx%d"), Width, Height);
		return false;
	}

	switch (Frame.encoding)
	{
	case avatarforge::Encoding::kRawRgba8:
		if (static_cast<int64>(Frame.data.size()) != PixelCount * 4)
		{
			OutError = FString::Printf(TEXT("AvatarForge: RAW_RGBA8 frame holds %llu bytes, %dx%d needs %lld"),
				static_cast<unsigned long long>(Frame.data.size()), Width, Height, PixelCount * 4);
			return false;
		}
		// Same row order as Unreal textures (top row first): a straight copy.
		Out.Pixels = ToBytes(Frame.data);
		break;
	case avatarforge::Encoding::kJpeg:
		if (!DecodeCompressed(Frame.data, EImageFormat::JPEG, Width, Height, Out.Pixels, OutError))
		{
			return false;
		}
		break;
	default:
		if (!DecodeCompressed(Frame.data, EImageFormat::PNG, Width, Height, Out.Pixels, OutError))
		{
			return false;
		}
		break;
	}

	if (!Frame.alpha.empty())
	{
		if (static_cast<int64>(Frame.alpha.size()) != PixelCount)
		{
			OutError = TEXT("AvatarForge: the frame's alpha plane does not match its size");
			return false;
		}
		// JPEG carries no alpha of its own; the separate plane restores transparency.
		for (int64 i = 0; i < PixelCount; ++i)
		{
			Out.Pixels[i * 4 + 3] = static_cast<uint8>(Frame.alpha[static_cast<size_t>(i)]);
		}
	}

	Out.Info.Seq = static_cast<int64>(Frame.seq);
	Out.Info.Width = Width;
	Out.Info.Height = Height;
	Out.Info.RenderMs = Frame.render_ms;
	Out.Info.QueueMs = Frame.queue_ms;
	Out.Info.Dropped = static_cast<int32>(Frame.dropped);
	if (!Frame.depth.empty())
	{
		if (static_cast<int64>(Frame.depth.size()) != PixelCount * 4)
		{
			OutError = TEXT("AvatarForge: the frame's depth plane does not match its size");
			return false;
		}
		Out.Info.Depth.SetNumUninitialized(static_cast<int32>(PixelCount));
		// float32 little-endian on the wire; every platform Unreal ships on is little-endian.
		FMemory::Memcpy(Out.Info.Depth.GetData(), Frame.depth.data(), Frame.depth.size());
	}
	return true;
}

UTexture2D* EnsureFrameTexture(UTexture2D* Existing, int32 Width, int32 Height)
{
	check(IsInGameThread());
	if (Existing && Existing->GetSizeX() == Width && Existing->GetSizeY() == Height)
	{
		return Existing;
	}
	UTexture2D* Texture = UTexture2D::CreateTransient(Width, Height, PF_R8G8B8A8);
	if (!Texture)
	{
		return nullptr;
	}
	Texture->SRGB = true;
	Texture->MipGenSettings = TMGS_NoMipmaps;
	Texture->AddressX = TA_Clamp;
	Texture->AddressY = TA_Clamp;
	Texture->UpdateResource();
	return Texture;
}

void UploadPixels(UTexture2D* Texture, TArray<uint8>&& Pixels, int32 Width, int32 Height)
{
	check(IsInGameThread());
	if (!Texture || Pixels.Num() != Width * Height * 4)
	{
		return;
	}
	// The render thread reads both the region and the pixels later; it owns and frees them.
	struct FUpload
	{
		TArray<uint8> Pixels;
		FUpdateTextureRegion2D Region;
	};
	FUpload* Upload = new FUpload{MoveTemp(Pixels), FUpdateTextureRegion2D(0, 0, 0, 0, Width, Height)};
	Texture->UpdateTextureRegions(0, 1, &Upload->Region, static_cast<uint32>(Width * 4), 4, Upload->Pixels.GetData(),
		[Upload](uint8*, const FUpdateTextureRegion2D*) { delete Upload; });
}

UTexture2D* TextureFromPng(const TArray<uint8>& Png)
{
	check(IsInGameThread());
	if (Png.Num() == 0)
	{
		return nullptr;
	}
	return FImageUtils::ImportBufferAsTexture2D(TArrayView64<const uint8>(Png.GetData(), Png.Num()));
}
}
