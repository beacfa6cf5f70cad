#include "AvatarForgeRenderStream.h"

#include "Async/Async.h"
#include "AvatarForgeConversions.h"
#include "AvatarForgeLiveLink.h"
#include "AvatarForgeSubsystem.h"
#include "AvatarForgeTextures.h"
#include "Engine/Texture2D.h"

#include <atomic>
#include <memory>

/**
 * What the client's reader thread touches. The callbacks hold a raw pointer to this session,
 * which is safe because Stream is destroyed (joining the reader thread) before anything else here.
 */
struct FAvatarForgeStreamSession
{
	TWeakObjectPtr<UAvatarForgeRenderStream> Owner;
	FCriticalSection Lock;
	TOptional<AvatarForge::FDecodedFrame> Latest;
	std::atomic<bool> bDeliveryQueued{false};
	/** Requests answered or skipped by the server (frames + their `dropped` counts). */
	std::atomic<int64> Accounted{0};
	FAvatarForgeClientPtr Client;  // keeps the channel's owner alive as long as the stream
	std::unique_ptr<avatarforge::RenderStream> Stream;

	~FAvatarForgeStreamSession() { Stream.reset(); }

	void OnFrame(const avatarforge::Frame& Frame)
	{
		AvatarForge::FDecodedFrame Decoded;
		FString Error;
		if (!AvatarForge::DecodeFrame(Frame, Decoded, Error))
		{
			// Ends the call; the closed callback reports this message.
			throw avatarforge::Error(grpc::StatusCode::DATA_LOSS, AvatarForge::ToStd(Error));
		}
		Accounted += 1 + static_cast<int64>(Frame.dropped);
		{
			FScopeLock ScopeLock(&Lock);
			Latest = MoveTemp(Decoded);
		}
		if (!bDeliveryQueued.exchange(true))
		{
			AsyncTask(ENamedThreads::GameThread, [WeakOwner = Owner]()
			{
				if (UAvatarForgeRenderStream* Stream = WeakOwner.Get())
				{
					Stream->DeliverLatestFrame();
				}
			});
		}
	}

	void OnClosed(const avatarforge::Error* Error)
	{
		const FString Message = Error ? AvatarForge::DescribeError(*Error) : FString();
		AsyncTask(ENamedThreads::GameThread, [WeakOwner = Owner, Message]()
		{
			if (UAvatarForgeRenderStream* Stream = WeakOwner.Get())
			{
				Stream->HandleClosed(Message);
			}
		});
	}

	TOptional<AvatarForge::FDecodedFrame> Take()
	{
		bDeliveryQueued = false;
		FScopeLock ScopeLock(&Lock);
		TOptional<AvatarForge::FDecodedFrame> Out = MoveTemp(Latest);
		Latest.Reset();
		return Out;
	}
};

bool UAvatarForgeRenderStream::Open(FAvatarForgeClientPtr Client, const FString& InAvatarId, const FAvatarForgeFrameOptions& Options,
	EAvatarForgeStreamMode Mode, const TArray<FString>& InExpressionNames, FString& OutError)
{
	check(IsInGameThread());
	if (Session.IsValid())
	{
		OutError = TEXT("AvatarForge: this render stream is already open");
		return false;
	}
	if (!Client.IsValid())
	{
		OutError = TEXT("AvatarForge: no client to stream from");
		return false;
	}
	AvatarId = InAvatarId;
	ExpressionNames = InExpressionNames;
	bClosedBroadcast = false;
	NextSeq = 1;

	TSharedPtr<FAvatarForgeStreamSession, ESPMode::ThreadSafe> NewSession = MakeShared<FAvatarForgeStreamSession, ESPMode::ThreadSafe>();
	NewSession->Owner = this;
	NewSession->Client = Client;
	FAvatarForgeStreamSession* Raw = NewSession.Get();
	const bool bStarted = AvatarForge::RunGuarded([&]
	{
		NewSession->Stream = Client->StartRenderStream(AvatarForge::ToStd(AvatarId), AvatarForge::ToClient(Options), AvatarForge::ToClient(Mode),
			[Raw](const avatarforge::Frame& Frame) { Raw->OnFrame(Frame); },
			[Raw](const avatarforge::Error* Error) { Raw->OnClosed(Error); });
	}, OutError);
	if (!bStarted)
	{
		return false;
	}
	Session = NewSession;
	if (UAvatarForgeSubsystem* Subsystem = Cast<UAvatarForgeSubsystem>(GetOuter()))
	{
		Subsystem->TrackStream(this);
	}
	// The first frame shows the neutral face from the default camera.
	return RequestFrame() > 0;
}

int64 UAvatarForgeRenderStream::SetExpressionWeights(const TArray<float>& Weights)
{
	Expression.Weights = Weights;
	Expression.Named.Reset();
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::SetExpressionNamed(const TMap<FString, float>& Named)
{
	Expression.Weights.Reset();
	Expression.Named = Named;
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::SetExpression(const FAvatarForgeExpression& InExpression)
{
	Expression = InExpression;
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::SetExpressionFromLiveLink(FLiveLinkSubjectName Subject, bool bApplyHeadRotation, FString& OutError)
{
	FAvatarForgeExpression Sampled;
	FAvatarForgeHeadPose Pose;
	bool bHasPose = false;
	if (!UAvatarForgeLiveLinkLibrary::EvaluateLiveLinkExpression(Subject, ExpressionNames, LiveLinkHeadRotationScale, Sampled, Pose, bHasPose,
			OutError))
	{
		return 0;
	}
	Expression = Sampled;
	if (bApplyHeadRotation && bHasPose)
	{
		HeadPose = Pose;
	}
	return MarkDirty();
}

void UAvatarForgeRenderStream::FollowLiveLinkSubject(FLiveLinkSubjectName Subject, bool bApplyHeadRotation)
{
	FollowedSubject = Subject;
	bFollowHeadRotation = bApplyHeadRotation;
	bFollowLiveLink = true;
}

void UAvatarForgeRenderStream::StopFollowingLiveLink()
{
	bFollowLiveLink = false;
}

int64 UAvatarForgeRenderStream::SetCamera(const FAvatarForgeOrbitCamera& InCamera)
{
	Camera = InCamera;
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::SetHeadPose(const FAvatarForgeHeadPose& InHeadPose)
{
	HeadPose = InHeadPose;
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::SetEye(const TArray<float>& InEye)
{
	Eye = InEye;
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::RequestFrame()
{
	return MarkDirty();
}

int64 UAvatarForgeRenderStream::MarkDirty()
{
	if (!IsOpen())
	{
		return 0;
	}
	bDirty = true;
	// The request that will carry this state: sent now, or by Tick once a request slot frees up.
	const int64 Seq = NextSeq;
	SendPending();
	return Seq;
}

bool UAvatarForgeRenderStream::WindowOpen() const
{
	const int64 Sent = NextSeq - 1;
	return Session.IsValid() && Sent - Session->Accounted.load() < FMath::Max(1, MaxRequestsInFlight);
}

void UAvatarForgeRenderStream::SendPending()
{
	if (!bDirty || !IsOpen() || !WindowOpen())
	{
		return;
	}
	avatarforge::FrameParams Params;
	Params.seq = static_cast<uint64>(NextSeq);
	Params.camera = AvatarForge::ToClient(Camera);
	Params.expression = AvatarForge::ToClient(Expression);
	Params.head_pose = AvatarForge::ToClient(HeadPose);
	Params.eye.assign(Eye.GetData(), Eye.GetData() + Eye.Num());
	FString Error;
	bool bSent = false;
	AvatarForge::RunGuarded([&] { bSent = Session->Stream->Send(Params); }, Error);
	if (!Error.IsEmpty())
	{
		// A request the client refuses locally is reported like a server error.
		Shutdown(true, Error);
		return;
	}
	if (bSent)
	{
		++NextSeq;
		bDirty = false;
	}
}

void UAvatarForgeRenderStream::Tick(float DeltaTime)
{
	if (bFollowLiveLink)
	{
		FString Error;
		FAvatarForgeExpression Sampled;
		FAvatarForgeHeadPose Pose;
		bool bHasPose = false;
		if (UAvatarForgeLiveLinkLibrary::EvaluateLiveLinkExpression(FollowedSubject, ExpressionNames, LiveLinkHeadRotationScale, Sampled, Pose,
				bHasPose, Error))
		{
			Expression = Sampled;
			if (bFollowHeadRotation && bHasPose)
			{
				HeadPose = Pose;
			}
			bDirty = true;
		}
	}
	SendPending();
}

bool UAvatarForgeRenderStream::IsTickable() const
{
	return !HasAnyFlags(RF_ClassDefaultObject) && IsOpen() && (bDirty || bFollowLiveLink);
}

TStatId UAvatarForgeRenderStream::GetStatId() const
{
	RETURN_QUICK_DECLARE_CYCLE_STAT(UAvatarForgeRenderStream, STATGROUP_Tickables);
}

bool UAvatarForgeRenderStream::IsOpen() const
{
	return Session.IsValid() && Session->Stream && Session->Stream->Open();
}

void UAvatarForgeRenderStream::DeliverLatestFrame()
{
	if (!Session.IsValid())
	{
		return;
	}
	TOptional<AvatarForge::FDecodedFrame> Frame = Session->Take();
	if (!Frame.IsSet())
	{
		return;
	}
	Texture = AvatarForge::EnsureFrameTexture(Texture, Frame->Info.Width, Frame->Info.Height);
	AvatarForge::UploadPixels(Texture, MoveTemp(Frame->Pixels), Frame->Info.Width, Frame->Info.Height);
	LastFrame = MoveTemp(Frame->Info);
	OnFrameNative.Broadcast(Texture, LastFrame);
	OnFrame.Broadcast(this, Texture, LastFrame);
	// A reply freed a request slot: send whatever changed meanwhile.
	SendPending();
}

void UAvatarForgeRenderStream::HandleClosed(const FString& Error)
{
	if (bClosedBroadcast)
	{
		return;
	}
	bClosedBroadcast = true;
	bFollowLiveLink = false;
	Session.Reset();
	if (UAvatarForgeSubsystem* Subsystem = Cast<UAvatarForgeSubsystem>(GetOuter()))
	{
		Subsystem->ForgetStream(this);
	}
	OnClosedNative.Broadcast(Error);
	OnClosed.Broadcast(this, Error);
}

void UAvatarForgeRenderStream::Stop()
{
	Shutdown(true, FString());
}

void UAvatarForgeRenderStream::Shutdown(bool bBroadcast, const FString& Error)
{
	if (!Session.IsValid())
	{
		return;
	}
	// Destroying the session cancels the call and joins the reader thread.
	TSharedPtr<FAvatarForgeStreamSession, ESPMode::ThreadSafe> Ending = MoveTemp(Session);
	Ending.Reset();
	if (bBroadcast)
	{
		HandleClosed(Error);
	}
	else
	{
		bClosedBroadcast = true;
	}
}

void UAvatarForgeRenderStream::BeginDestroy()
{
	Shutdown(false, FString());
	Super::BeginDestroy();
}
