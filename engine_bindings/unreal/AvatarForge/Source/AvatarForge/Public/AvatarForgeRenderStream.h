#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeModule.h"
#include "AvatarForgeTypes.h"
#include "LiveLinkTypes.h"
#include "Tickable.h"
#include "UObject/Object.h"
#include "AvatarForgeRenderStream.generated.h"

class UTexture2D;
struct FAvatarForgeStreamSession;

DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FAvatarForgeStreamFrameEvent, UAvatarForgeRenderStream*, Stream, UTexture2D*, Texture,
	const FAvatarForgeFrameInfo&, Frame);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FAvatarForgeStreamClosedEvent, UAvatarForgeRenderStream*, Stream, const FString&, Error);
DECLARE_MULTICAST_DELEGATE_TwoParams(FAvatarForgeStreamFrameNative, UTexture2D*, const FAvatarForgeFrameInfo&);
DECLARE_MULTICAST_DELEGATE_OneParam(FAvatarForgeStreamClosedNative, const FString&);

/**
 * A live RenderStream into a transient UTexture2D. The stream keeps the current camera, expression,
 * head pose and gaze; every Set* call schedules a frame request carrying the new state and returns
 * the sequence number of the first frame that will show it. Requests in flight are capped, and the
 * texture always shows the newest frame that arrived (older undelivered frames are skipped).
 */
UCLASS(BlueprintType)
class AVATARFORGE_API UAvatarForgeRenderStream : public UObject, public FTickableGameObject
{
	GENERATED_BODY()

public:
	/** Game thread. ExpressionNames (the server's canonical list) filters Live Link curves. */
	bool Open(FAvatarForgeClientPtr Client, const FString& AvatarId, const FAvatarForgeFrameOptions& Options, EAvatarForgeStreamMode Mode,
		const TArray<FString>& ExpressionNames, FString& OutError);

	/** 52 weights in canonical order. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetExpressionWeights(const TArray<float>& Weights);

	/** Name -> weight (ARKit or Unreal spelling); unnamed targets are 0. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetExpressionNamed(const TMap<FString, float>& Named);

	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetExpression(const FAvatarForgeExpression& Expression);

	/** One sample of a Live Link subject's ARKit curves (and head rotation); returns 0 with OutError when there is none. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetExpressionFromLiveLink(FLiveLinkSubjectName Subject, bool bApplyHeadRotation, FString& OutError);

	/** Samples the subject every tick and streams it until StopFollowingLiveLink. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	void FollowLiveLinkSubject(FLiveLinkSubjectName Subject, bool bApplyHeadRotation = true);

	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	void StopFollowingLiveLink();

	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetCamera(const FAvatarForgeOrbitCamera& Camera);

	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetHeadPose(const FAvatarForgeHeadPose& HeadPose);

	/** FaceVerse eye 4-vector in radians; empty = gaze from the eyeLook* weights. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 SetEye(const TArray<float>& Eye);

	/** Asks for a frame of the current state even though nothing changed. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	int64 RequestFrame();

	/** Ends the stream; OnClosed fires with an empty error. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Stream")
	void Stop();

	UFUNCTION(BlueprintPure, Category = "AvatarForge|Stream")
	bool IsOpen() const;

	UFUNCTION(BlueprintPure, Category = "AvatarForge|Stream")
	UTexture2D* GetTexture() const { return Texture; }

	UFUNCTION(BlueprintPure, Category = "AvatarForge|Stream")
	FString GetAvatarId() const { return AvatarId; }

	UFUNCTION(BlueprintPure, Category = "AvatarForge|Stream")
	FAvatarForgeFrameInfo GetLastFrameInfo() const { return LastFrame; }

	/** Fires on the game thread after each texture update. */
	UPROPERTY(BlueprintAssignable, Category = "AvatarForge|Stream")
	FAvatarForgeStreamFrameEvent OnFrame;

	/** Fires once when the stream ends; Error is empty for a clean stop. */
	UPROPERTY(BlueprintAssignable, Category = "AvatarForge|Stream")
	FAvatarForgeStreamClosedEvent OnClosed;

	FAvatarForgeStreamFrameNative OnFrameNative;
	FAvatarForgeStreamClosedNative OnClosedNative;

	/** Converts Live Link head rotation values to radians (AvatarForge-exported Live Link CSVs are already radians). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|Stream")
	float LiveLinkHeadRotationScale = 1.0f;

	/** Frame requests allowed in flight before further changes are coalesced into the next request. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "AvatarForge|Stream", meta = (ClampMin = "1", ClampMax = "16"))
	int32 MaxRequestsInFlight = 2;

	// FTickableGameObject
	virtual void Tick(float DeltaTime) override;
	virtual bool IsTickable() const override;
	virtual ETickableTickType GetTickableTickType() const override { return ETickableTickType::Conditional; }
	virtual TStatId GetStatId() const override;
	virtual bool IsTickableWhenPaused() const override { return true; }
	virtual bool IsTickableInEditor() const override { return true; }

	virtual void BeginDestroy() override;

	/** Game thread, from the session: the newest decoded frame is waiting. */
	void DeliverLatestFrame();
	/** Game thread, from the session: the call ended. */
	void HandleClosed(const FString& Error);

private:
	int64 MarkDirty();
	bool WindowOpen() const;
	void SendPending();
	void Shutdown(bool bBroadcast, const FString& Error);

	TSharedPtr<FAvatarForgeStreamSession, ESPMode::ThreadSafe> Session;

	UPROPERTY(Transient)
	TObjectPtr<UTexture2D> Texture;

	FString AvatarId;
	TArray<FString> ExpressionNames;
	FAvatarForgeOrbitCamera Camera;
	FAvatarForgeExpression Expression;
	FAvatarForgeHeadPose HeadPose;
	TArray<float> Eye;
	FAvatarForgeFrameInfo LastFrame;

	int64 NextSeq = 1;
	bool bDirty = false;
	bool bClosedBroadcast = false;
	bool bFollowLiveLink = false;
	bool bFollowHeadRotation = true;
	FLiveLinkSubjectName FollowedSubject;
};
