// Blueprint-facing value types of the AvatarForge API (mirrors protos/avatarforge/v1/avatarforge.proto).
#pragma once

#include "CoreMinimal.h"
#include "Engine/EngineTypes.h"
#include "AvatarForgeTypes.generated.h"

class UTexture2D;

UENUM(BlueprintType)
enum class EAvatarForgeStreamMode : uint8
{
	/** One frame per request, in order. */
	EveryFrame,
	/** The server renders only the newest pending request (live viewports). */
	LatestWins,
};

UENUM(BlueprintType)
enum class EAvatarForgeFrameEncoding : uint8
{
	/** Uncompressed RGBA8: cheapest to decode, largest on the wire (best on loopback). */
	RawRgba8,
	Png,
	/** RGB only; ask for alpha separately to keep transparency. */
	Jpeg,
};

UENUM(BlueprintType)
enum class EAvatarForgeExportFormat : uint8
{
	/** Head mesh + 52 ARKit morph targets + baked texture (+ static parts). */
	Glb,
	/** blendshapes.json / .csv / .npz. */
	Tables,
	/** glTF animation + Live Link Face CSV from the animation source files. */
	Animation,
	/** Four half-float EXR planes + triplane.json + decoder weights. */
	Triplane,
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeConnectionSettings
{
	GENERATED_BODY()

	/** host:port of the AvatarForge server. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	/** Bearer token; empty when the server has no token file. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (PasswordField = true))
	FString Token;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|TLS")
	bool bUseTls = false;

	/** PEM bundle of trusted roots; empty = the system roots. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|TLS")
	FString RootCertificatesFile;

	/** Mutual TLS: client certificate chain and private key (PEM files), both or neither. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|TLS")
	FString ClientCertificateFile;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|TLS")
	FString ClientKeyFile;

	/** Expected certificate name when it differs from the host in ServerAddress. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|TLS")
	FString ServerNameOverride;

	/** Deadline of non-streaming calls, and of Create/Export as a whole; 0 = none. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (ClampMin = "0"))
	float CallTimeoutSeconds = 300.0f;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeProgress
{
	GENERATED_BODY()

	/** e.g. "decode", "detect", "fit", "texture", "planes", "decoder", "save". */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Stage;

	/** Overall progress in [0, 1]. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	float Fraction = 0.0f;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Message;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeAvatarInfo
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString AvatarId;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Generator;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString GeneratorVersion;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString SourceSha256;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString HeadModelId;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString DisplayName;

	/** Seconds since the Unix epoch. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	double CreatedUnix = 0.0;

	/** The avatar rendered from its portrait camera (when the call asked for it). */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TObjectPtr<UTexture2D> Thumbnail = nullptr;

	/** EG3D 25-vector of the portrait camera. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TArray<float> PortraitCamera;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int32 SchemaVersion = 0;
};

/** Friendly camera: degrees; yaw > 0 orbits toward the subject's left cheek, pitch > 0 looks down. */
USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeOrbitCamera
{
	GENERATED_BODY()

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float YawDeg = 0.0f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float PitchDeg = 0.0f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float RollDeg = 0.0f;

	/** Distance from the head's centre; 0 = server default (2.7). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (ClampMin = "0"))
	float Radius = 0.0f;

	/** Field of view in degrees; 0 = server default (18.837). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (ClampMin = "0"))
	float FovDeg = 0.0f;
};

/** ARKit-52 weights in canonical (alphabetical) order, or a name -> weight map; both empty = neutral. */
USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeExpression
{
	GENERATED_BODY()

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	TArray<float> Weights;

	/** Names match case-insensitively, so Unreal's PascalCase (JawOpen) works as well as ARKit's (jawOpen). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	TMap<FString, float> Named;
};

/** Whole-head rotation in radians. */
USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeHeadPose
{
	GENERATED_BODY()

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float Yaw = 0.0f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float Pitch = 0.0f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float Roll = 0.0f;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeFrameOptions
{
	GENERATED_BODY()

	/** 16..2048 per side. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (ClampMin = "16", ClampMax = "2048"))
	int32 Width = 256;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (ClampMin = "16", ClampMax = "2048"))
	int32 Height = 256;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	EAvatarForgeFrameEncoding Encoding = EAvatarForgeFrameEncoding::RawRgba8;

	/** 1..100; 0 = server default (90). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (ClampMin = "0", ClampMax = "100"))
	int32 JpegQuality = 0;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	bool bIncludeDepth = false;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	bool bIncludeAlpha = false;

	/** Colour behind the avatar (alpha ignored) when bUseBackground is set. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	bool bUseBackground = false;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge", meta = (EditCondition = "bUseBackground"))
	FLinearColor Background = FLinearColor::Black;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeFrameInfo
{
	GENERATED_BODY()

	/** The request's sequence number (0 for single renders). */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 Seq = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int32 Width = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int32 Height = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	float RenderMs = 0.0f;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	float QueueMs = 0.0f;

	/** LATEST_WINS: requests the server skipped before this frame. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int32 Dropped = 0;

	/** Camera distance per pixel, top row first (when depth was asked for). */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TArray<float> Depth;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeRenderSettings
{
	GENERATED_BODY()

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	FAvatarForgeOrbitCamera Camera;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	FAvatarForgeExpression Expression;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	FAvatarForgeHeadPose HeadPose;

	/** FaceVerse eye 4-vector (left eye down, left eye toward +x, right eye down, right eye toward +x), radians; empty = from eyeLook* weights. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	TArray<float> Eye;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	FAvatarForgeFrameOptions Options;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeExportOptions
{
	GENERATED_BODY()

	/** Baked texture size, a power of two in 256..4096; 0 = 1024. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	int32 TextureSize = 0;

	/** Triangle budget of the hair/ears/neck mesh; 0 = server default. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	int32 StaticTriangleBudget = 0;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	bool bWithoutStaticParts = false;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	bool bWithoutTargetNormals = false;

	/** Animation frame rate; 0 = 30. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	float FrameRate = 0.0f;

	/** For the Animation format: a Live Link Face .csv, a .json list of name->weight maps, or FaceVerse .npy frames in order. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge")
	TArray<FString> AnimationSourceFiles;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeGeneratorInfo
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Name;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Version;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Description;
};

USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeServerInfo
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Version;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TArray<FAvatarForgeGeneratorInfo> Generators;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString DefaultGenerator;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString RasterizerBackend;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FString Device;

	/** The canonical expression order (52 ARKit names). */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TArray<FString> ExpressionNames;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	bool bAuthRequired = false;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 MaxPortraitBytes = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 MaxPortraitPixels = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int32 MaxStreams = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 MaxFramePixels = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 MaxMessageBytes = 0;

	/** Frames one TrackFace stream may carry. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 MaxTrackFrames = 0;
};

/** One frame's TrackFace answer: ARKit curves, head pose and gaze tracked in a video frame. */
USTRUCT(BlueprintType)
struct AVATARFORGE_API FAvatarForgeTrackedFace
{
	GENERATED_BODY()

	/** Index of the frame in the list sent. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int64 Seq = 0;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	float TimeSeconds = 0.0f;

	/** False when no face was found in this frame: the values are the last ones held. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	bool bFound = false;

	/** 0..1: face presence times fit quality. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	float Confidence = 0.0f;

	/** ARKit name (as the server's header names it) -> weight in [0, 1]. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TMap<FName, float> Curves;

	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	FAvatarForgeHeadPose HeadPose;

	/** FaceVerse eye 4-vector, radians (as FAvatarForgeRenderSettings::Eye). */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	TArray<float> Eye;

	/** LATEST_WINS: frames the server skipped before this one. */
	UPROPERTY(BlueprintReadOnly, Category = "AvatarForge")
	int32 Dropped = 0;
};
