// Blueprint async nodes, one per AvatarForge call. Every node resolves its client from the world
// context (the game instance's UAvatarForgeSubsystem, or the project-settings client in editor
// tools), does the network work on a worker thread and fires its pins on the game thread.
#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeModule.h"
#include "AvatarForgeTypes.h"
#include "Kismet/BlueprintAsyncActionBase.h"
#include "LiveLinkTypes.h"
#include "AvatarForgeAsyncActions.generated.h"

class UAvatarForgeRenderStream;
class UTexture2D;

UCLASS(Abstract)
class AVATARFORGE_API UAvatarForgeAsyncAction : public UBlueprintAsyncActionBase
{
	GENERATED_BODY()

public:
	virtual void Activate() override;

protected:
	/** Game thread, in Activate: starts the node's work with a resolved client. */
	virtual void Start(FAvatarForgeClientPtr Client) PURE_VIRTUAL(UAvatarForgeAsyncAction::Start, );
	/** Game thread: fire the failure pin. */
	virtual void BroadcastFailure(const FString& Error) PURE_VIRTUAL(UAvatarForgeAsyncAction::BroadcastFailure, );

	/** Remembers the context and keeps the node alive until Finish (game instance, or the root set in editor tools). */
	void Prepare(const UObject* WorldContextObject);
	/** Runs Work on the thread pool; an exception there becomes the failure pin. */
	void RunOnWorker(TUniqueFunction<void(avatarforge::Client&)> Work);
	/** Queues Fn to run on the game thread if this node still exists. */
	void OnGameThread(TUniqueFunction<void(UAvatarForgeAsyncAction&)> Fn);
	void Fail(const FString& Error);
	void Finish();

	TWeakObjectPtr<const UObject> WorldContext;
	FAvatarForgeClientPtr ActiveClient;

private:
	bool bRooted = false;
	bool bFinished = false;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FAvatarForgeCreateAvatarPin, const FAvatarForgeProgress&, Progress,
	const FAvatarForgeAvatarInfo&, Avatar, const FString&, Error);

/** CreateAvatar: uploads a portrait; progress while the server works, then the avatar. */
UCLASS()
class AVATARFORGE_API UAvatarForgeCreateAvatarAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeCreateAvatarAction* CreateAvatarFromFile(UObject* WorldContextObject, const FString& PortraitFile,
		const FString& DisplayName, const FString& Generator);

	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeCreateAvatarAction* CreateAvatarFromBytes(UObject* WorldContextObject, const TArray<uint8>& Portrait,
		const FString& DisplayName, const FString& Generator);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeCreateAvatarPin OnProgress;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeCreateAvatarPin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeCreateAvatarPin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	FString PortraitFile;
	TArray<uint8> PortraitBytes;
	FString DisplayName;
	FString Generator;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarForgeAvatarInfoPin, const FAvatarForgeAvatarInfo&, Avatar, const FString&, Error);

/** GetAvatar. */
UCLASS()
class AVATARFORGE_API UAvatarForgeGetAvatarAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeGetAvatarAction* GetAvatar(UObject* WorldContextObject, const FString& AvatarId, bool bIncludeThumbnail = true);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeAvatarInfoPin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeAvatarInfoPin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	FString AvatarId;
	bool bIncludeThumbnail = true;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarForgeAvatarListPin, const TArray<FAvatarForgeAvatarInfo>&, Avatars, const FString&, Error);

/** ListAvatars (all pages). */
UCLASS()
class AVATARFORGE_API UAvatarForgeListAvatarsAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeListAvatarsAction* ListAvatars(UObject* WorldContextObject);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeAvatarListPin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeAvatarListPin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarForgeDeletePin, bool, bDeleted, const FString&, Error);

/** DeleteAvatar; bDeleted is false when the id was not stored. */
UCLASS()
class AVATARFORGE_API UAvatarForgeDeleteAvatarAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeDeleteAvatarAction* DeleteAvatar(UObject* WorldContextObject, const FString& AvatarId);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeDeletePin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeDeletePin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	FString AvatarId;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FAvatarForgeFramePin, UTexture2D*, Texture, const FAvatarForgeFrameInfo&, Frame,
	const FString&, Error);

/** Render: one frame into a new transient texture. */
UCLASS()
class AVATARFORGE_API UAvatarForgeRenderFrameAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeRenderFrameAction* RenderFrame(UObject* WorldContextObject, const FString& AvatarId,
		const FAvatarForgeRenderSettings& Settings);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeFramePin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeFramePin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	FString AvatarId;
	FAvatarForgeRenderSettings Settings;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarForgeServerInfoPin, const FAvatarForgeServerInfo&, Info, const FString&, Error);

/** GetServerInfo: version, generators, limits, expression names; also a cheap connection/token check. */
UCLASS()
class AVATARFORGE_API UAvatarForgeGetServerInfoAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeGetServerInfoAction* GetServerInfo(UObject* WorldContextObject);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeServerInfoPin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeServerInfoPin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarForgeTrackPin, const TArray<FAvatarForgeTrackedFace>&, Faces,
	const FString&, Error);

/**
 * TrackFace: the face in a sequence of video frames (JPEG or PNG files, in order, e.g. an image
 * sequence of reference footage) -> ARKit curves, head pose and gaze per frame.
 */
UCLASS()
class AVATARFORGE_API UAvatarForgeTrackFacesAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeTrackFacesAction* TrackFaces(UObject* WorldContextObject, const TArray<FString>& FramePaths,
		float FrameRate = 30.0f, EAvatarForgeStreamMode Mode = EAvatarForgeStreamMode::EveryFrame);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeTrackPin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeTrackPin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	TArray<FString> FramePaths;
	float FrameRate = 30.0f;
	EAvatarForgeStreamMode Mode = EAvatarForgeStreamMode::EveryFrame;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_FourParams(FAvatarForgeStreamPin, UAvatarForgeRenderStream*, Stream, UTexture2D*, Texture,
	const FAvatarForgeFrameInfo&, Frame, const FString&, Error);

/**
 * RenderStream: OnStarted hands over the stream (drive it with its Set* functions or the
 * SetExpression nodes), OnFrame fires per texture update, OnClosed when it ends.
 */
UCLASS()
class AVATARFORGE_API UAvatarForgeStartRenderStreamAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeStartRenderStreamAction* StartRenderStream(UObject* WorldContextObject, const FString& AvatarId,
		const FAvatarForgeFrameOptions& Options, EAvatarForgeStreamMode Mode = EAvatarForgeStreamMode::LatestWins);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeStreamPin OnStarted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeStreamPin OnFrame;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeStreamPin OnClosed;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeStreamPin OnFailed;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	void OpenOnGameThread(const TArray<FString>& ExpressionNames);

	FString AvatarId;
	FAvatarForgeFrameOptions Options;
	EAvatarForgeStreamMode Mode = EAvatarForgeStreamMode::LatestWins;

	UPROPERTY(Transient)
	TObjectPtr<UAvatarForgeRenderStream> Stream;
};

/** SetExpression on a running stream; completes when the first frame showing it arrives. */
UCLASS()
class AVATARFORGE_API UAvatarForgeSetExpressionAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	/** 52 weights in canonical (alphabetical ARKit) order. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeSetExpressionAction* SetExpressionWeights(UObject* WorldContextObject, UAvatarForgeRenderStream* Stream,
		const TArray<float>& Weights);

	/** Name -> weight, ARKit or Unreal spelling; unnamed targets are 0. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeSetExpressionAction* SetExpressionByName(UObject* WorldContextObject, UAvatarForgeRenderStream* Stream,
		const TMap<FString, float>& Weights);

	/** The current ARKit curves of a Live Link subject (e.g. the Live Link Face app). */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject"))
	static UAvatarForgeSetExpressionAction* SetExpressionFromLiveLink(UObject* WorldContextObject, UAvatarForgeRenderStream* Stream,
		FLiveLinkSubjectName Subject, bool bApplyHeadRotation = true);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeFramePin OnRendered;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeFramePin OnFailed;

	virtual void Activate() override;

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	enum class ESource : uint8
	{
		Weights,
		Named,
		LiveLink
	};
	void HandleFrame(UTexture2D* Texture, const FAvatarForgeFrameInfo& Frame);
	void HandleClosed(const FString& Error);
	void Unbind();

	ESource Source = ESource::Weights;
	TArray<float> Weights;
	TMap<FString, float> Named;
	FLiveLinkSubjectName Subject;
	bool bApplyHeadRotation = true;
	int64 WaitingForSeq = 0;
	FDelegateHandle FrameHandle;
	FDelegateHandle ClosedHandle;

	UPROPERTY(Transient)
	TObjectPtr<UAvatarForgeRenderStream> Stream;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_FourParams(FAvatarForgeExportPin, const FAvatarForgeProgress&, Progress, const TArray<FString>&, Files,
	const TArray<FString>&, ImportedAssets, const FString&, Error);

/**
 * Export: writes the baked files (each verified against its sha256) under OutputDirectory (empty =
 * Saved/AvatarForge/<avatar id>), then, when asked and running in the editor, imports them into
 * ContentPath through the editor module (Interchange's glTF pipeline for the GLB).
 */
UCLASS()
class AVATARFORGE_API UAvatarForgeExportAction : public UAvatarForgeAsyncAction
{
	GENERATED_BODY()

public:
	UFUNCTION(BlueprintCallable, Category = "AvatarForge", meta = (BlueprintInternalUseOnly = "true", WorldContext = "WorldContextObject",
		AutoCreateRefTerm = "Formats"))
	static UAvatarForgeExportAction* ExportAvatar(UObject* WorldContextObject, const FString& AvatarId,
		const TArray<EAvatarForgeExportFormat>& Formats, const FAvatarForgeExportOptions& Options, const FString& OutputDirectory,
		bool bImportIntoProject, const FString& ContentPath);

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeExportPin OnProgress;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeExportPin OnCompleted;

	UPROPERTY(BlueprintAssignable)
	FAvatarForgeExportPin OnFailed;

	/** Saved/AvatarForge/<AvatarId>: where exports land by default. */
	static FString DefaultExportDirectory(const FString& AvatarId);

protected:
	virtual void Start(FAvatarForgeClientPtr Client) override;
	virtual void BroadcastFailure(const FString& Error) override;

private:
	void Complete(const TArray<FString>& Files);

	FString AvatarId;
	TArray<EAvatarForgeExportFormat> Formats;
	FAvatarForgeExportOptions Options;
	FString OutputDirectory;
	bool bImportIntoProject = false;
	FString ContentPath;
};
