#include "AvatarForgeConversions.h"

#include "Misc/FileHelper.h"
#include "Misc/Paths.h"

namespace AvatarForge
{
FString ToFString(const std::string& Utf8)
{
	const FUTF8ToTCHAR Converted(Utf8.data(), static_cast<int32>(Utf8.size()));
	return FString(Converted.Length(), Converted.Get());
}

std::string ToStd(const FString& Text)
{
	const FTCHARToUTF8 Converted(*Text);
	return std::string(Converted.Get(), Converted.Length());
}

TArray<uint8> ToBytes(const std::string& Bytes)
{
	return TArray<uint8>(reinterpret_cast<const uint8*>(Bytes.data()), static_cast<int32>(Bytes.size()));
}

std::string ToStdBytes(TConstArrayView<uint8> Bytes)
{
	return std::string(reinterpret_cast<const char*>(Bytes.GetData()), static_cast<size_t>(Bytes.Num()));
}

avatarforge::ClientOptions ToClient(const FAvatarForgeConnectionSettings& Settings, FString& OutError, bool& bOk)
{
	avatarforge::ClientOptions Options;
	Options.address = ToStd(Settings.ServerAddress);
	Options.token = ToStd(Settings.Token);
	Options.use_tls = Settings.bUseTls;
	Options.tls_server_name_override = ToStd(Settings.ServerNameOverride);
	Options.call_timeout = std::chrono::milliseconds(static_cast<int64>(FMath::Max(0.0f, Settings.CallTimeoutSeconds) * 1000.0f));
	bOk = true;
	auto ReadPem = [&](const FString& Path, std::string& Out)
	{
		if (Path.IsEmpty() || !bOk)
		{
			return;
		}
		FString Text;
		if (!FFileHelper::LoadFileToString(Text, *Path))
		{
			OutError = FString::Printf(TEXT("AvatarForge: cannot read the PEM file '%s'"), *Path);
			bOk = false;
			return;
		}
		Out = ToStd(Text);
	};
	ReadPem(Settings.RootCertificatesFile, Options.tls_root_certs_pem);
	ReadPem(Settings.ClientCertificateFile, Options.tls_client_cert_pem);
	ReadPem(Settings.ClientKeyFile, Options.tls_client_key_pem);
	return Options;
}

avatarforge::Camera ToClient(const FAvatarForgeOrbitCamera& Camera)
{
	return avatarforge::Camera::Orbit(Camera.YawDeg, Camera.PitchDeg, Camera.RollDeg, Camera.Radius, Camera.FovDeg);
}

avatarforge::Expression ToClient(const FAvatarForgeExpression& Expression)
{
	avatarforge::Expression Out;
	Out.weights.assign(Expression.Weights.GetData(), Expression.Weights.GetData() + Expression.Weights.Num());
	for (const TPair<FString, float>& Pair : Expression.Named)
	{
		Out.named[ToStd(Pair.Key)] = Pair.Value;
	}
	return Out;
}

avatarforge::HeadPose ToClient(const FAvatarForgeHeadPose& Pose)
{
	return avatarforge::HeadPose{Pose.Yaw, Pose.Pitch, Pose.Roll};
}

avatarforge::FrameOptions ToClient(const FAvatarForgeFrameOptions& Options)
{
	avatarforge::FrameOptions Out;
	Out.width = static_cast<uint32>(FMath::Max(0, Options.Width));
	Out.height = static_cast<uint32>(FMath::Max(0, Options.Height));
	switch (Options.Encoding)
	{
	case EAvatarForgeFrameEncoding::RawRgba8: Out.encoding = avatarforge::Encoding::kRawRgba8; break;
	case EAvatarForgeFrameEncoding::Png: Out.encoding = avatarforge::Encoding::kPng; break;
	case EAvatarForgeFrameEncoding::Jpeg: Out.encoding = avatarforge::Encoding::kJpeg; break;
	}
	Out.jpeg_quality = static_cast<uint32>(FMath::Clamp(Options.JpegQuality, 0, 100));
	Out.include_depth = Options.bIncludeDepth;
	Out.include_alpha = Options.bIncludeAlpha;
	if (Options.bUseBackground)
	{
		Out.background = {Options.Background.R, Options.Background.G, Options.Background.B};
	}
	return Out;
}

avatarforge::StreamMode ToClient(EAvatarForgeStreamMode Mode)
{
	return Mode == EAvatarForgeStreamMode::LatestWins ? avatarforge::StreamMode::kLatestWins : avatarforge::StreamMode::kEveryFrame;
}

avatarforge::ExportFormat ToClient(EAvatarForgeExportFormat Format)
{
	switch (Format)
	{
	case EAvatarForgeExportFormat::Tables: return avatarforge::ExportFormat::kTables;
	case EAvatarForgeExportFormat::Animation: return avatarforge::ExportFormat::kAnimation;
	case EAvatarForgeExportFormat::Triplane: return avatarforge::ExportFormat::kTriplane;
	case EAvatarForgeExportFormat::Glb:
	default: return avatarforge::ExportFormat::kGlb;
	}
}

bool ToClient(const FAvatarForgeExportOptions& Options, avatarforge::ExportOptions& Out, FString& OutError)
{
	Out.texture_size = static_cast<uint32>(FMath::Max(0, Options.TextureSize));
	Out.static_triangle_budget = static_cast<uint32>(FMath::Max(0, Options.StaticTriangleBudget));
	Out.without_static_parts = Options.bWithoutStaticParts;
	Out.without_target_normals = Options.bWithoutTargetNormals;
	Out.frame_rate = Options.FrameRate;
	for (const FString& File : Options.AnimationSourceFiles)
	{
		TArray<uint8> Bytes;
		if (!FFileHelper::LoadFileToArray(Bytes, *File))
		{
			OutError = FString::Printf(TEXT("AvatarForge: cannot read the animation source '%s'"), *File);
			return false;
		}
		Out.animation_sources.push_back({ToStd(FPaths::GetCleanFilename(File)), ToStdBytes(Bytes)});
	}
	return true;
}

FAvatarForgeAvatarInfo FromClient(const avatarforge::AvatarInfo& Info, TArray<uint8>* OutThumbnailPng)
{
	FAvatarForgeAvatarInfo Out;
	Out.AvatarId = ToFString(Info.avatar_id);
	Out.Generator = ToFString(Info.generator);
	Out.GeneratorVersion = ToFString(Info.generator_version);
	Out.SourceSha256 = ToFString(Info.source_sha256);
	Out.HeadModelId = ToFString(Info.head_model_id);
	Out.DisplayName = ToFString(Info.display_name);
	Out.CreatedUnix = Info.created_unix;
	Out.PortraitCamera.Append(Info.portrait_camera.data(), static_cast<int32>(Info.portrait_camera.size()));
	Out.SchemaVersion = static_cast<int32>(Info.schema_version);
	if (OutThumbnailPng)
	{
		*OutThumbnailPng = ToBytes(Info.thumbnail_png);
	}
	return Out;
}

FAvatarForgeProgress FromClient(const avatarforge::Progress& Progress)
{
	FAvatarForgeProgress Out;
	Out.Stage = ToFString(Progress.stage);
	Out.Fraction = Progress.fraction;
	Out.Message = ToFString(Progress.message);
	return Out;
}

FAvatarForgeServerInfo FromClient(const avatarforge::ServerInfo& Info)
{
	FAvatarForgeServerInfo Out;
	Out.Version = ToFString(Info.version);
	for (const avatarforge::GeneratorInfo& Generator : Info.generators)
	{
		FAvatarForgeGeneratorInfo& G = Out.Generators.AddDefaulted_GetRef();
		G.Name = ToFString(Generator.name);
		G.Version = ToFString(Generator.version);
		G.Description = ToFString(Generator.description);
	}
	Out.DefaultGenerator = ToFString(Info.default_generator);
	Out.RasterizerBackend = ToFString(Info.rasterizer_backend);
	Out.Device = ToFString(Info.device);
	for (const std::string& Name : Info.expression_names)
	{
		Out.ExpressionNames.Add(ToFString(Name));
	}
	Out.bAuthRequired = Info.auth_required;
	Out.MaxPortraitBytes = static_cast<int64>(Info.limits.max_portrait_bytes);
	Out.MaxPortraitPixels = static_cast<int64>(Info.limits.max_portrait_pixels);
	Out.MaxStreams = static_cast<int32>(Info.limits.max_streams);
	Out.MaxFramePixels = static_cast<int64>(Info.limits.max_frame_pixels);
	Out.MaxMessageBytes = static_cast<int64>(Info.limits.max_message_bytes);
	Out.MaxTrackFrames = static_cast<int64>(Info.limits.max_track_frames);
	return Out;
}

TArray<FAvatarForgeTrackedFace> FromClient(const avatarforge::TrackResult& Result)
{
	TArray<FName> Names;
	for (const std::string& Name : Result.channel_names)
	{
		Names.Add(FName(*ToFString(Name)));
	}
	TArray<FAvatarForgeTrackedFace> Out;
	for (const avatarforge::TrackedFace& Face : Result.faces)
	{
		FAvatarForgeTrackedFace& F = Out.AddDefaulted_GetRef();
		F.Seq = static_cast<int64>(Face.seq);
		F.TimeSeconds = static_cast<float>(Face.time_s);
		F.bFound = Face.found;
		F.Confidence = Face.confidence;
		for (int32 K = 0; K < Names.Num() && K < static_cast<int32>(Face.weights.size()); ++K)
		{
			F.Curves.Add(Names[K], Face.weights[K]);
		}
		F.HeadPose.Yaw = Face.head_pose.yaw;
		F.HeadPose.Pitch = Face.head_pose.pitch;
		F.HeadPose.Roll = Face.head_pose.roll;
		F.Eye.Append(Face.eye.data(), static_cast<int32>(Face.eye.size()));
		F.Dropped = static_cast<int32>(Face.dropped);
	}
	return Out;
}

FString DescribeError(const std::exception& Error)
{
	return FString::Printf(TEXT("AvatarForge: %s"), *ToFString(Error.what()));
}
}
