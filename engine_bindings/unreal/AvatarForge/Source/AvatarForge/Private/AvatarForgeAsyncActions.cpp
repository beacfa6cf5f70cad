#include "AvatarForgeAsyncActions.h"

#include "Async/Async.h"
#include "AvatarForgeConversions.h"
#include "AvatarForgeRenderStream.h"
#include "AvatarForgeSubsystem.h"
#include "AvatarForgeTextures.h"
#include "Engine/Engine.h"
#include "Engine/GameInstance.h"
#include "Engine/Texture2D.h"
#include "Engine/World.h"
#include "Misc/FileHelper.h"
#include "Misc/Paths.h"
#include "UObject/Package.h"

// ---------------------------------------------------------------------------------------------
// Base

void UAvatarForgeAsyncAction::Prepare(const UObject* WorldContextObject)
{
	WorldContext = WorldContextObject;
	const UWorld* World = GEngine ? GEngine->GetWorldFromContextObject(WorldContextObject, EGetWorldErrorMode::ReturnNull) : nullptr;
	if (World && World->GetGameInstance())
	{
		RegisterWithGameInstance(World->GetGameInstance());
	}
	else
	{
		// Editor utility widgets and editor tools have no game instance to keep the node alive.
		AddToRoot();
		bRooted = true;
	}
}

void UAvatarForgeAsyncAction::Activate()
{
	FString Error;
	ActiveClient = UAvatarForgeSubsystem::ResolveClient(WorldContext.Get(), Error);
	if (!ActiveClient.IsValid())
	{
		Fail(Error.IsEmpty() ? FString(TEXT("AvatarForge: no connection to the server")) : Error);
		return;
	}
	Start(ActiveClient);
}

void UAvatarForgeAsyncAction::RunOnWorker(TUniqueFunction<void(avatarforge::Client&)> Work)
{
	TWeakObjectPtr<UAvatarForgeAsyncAction> WeakThis(this);
	FAvatarForgeClientPtr Client = ActiveClient;
	Async(EAsyncExecution::ThreadPool, [WeakThis, Client, Work = MoveTemp(Work)]() mutable
	{
		FString Error;
		if (!AvatarForge::RunGuarded([&] { Work(*Client); }, Error))
		{
			AsyncTask(ENamedThreads::GameThread, [WeakThis, Error]()
			{
				if (UAvatarForgeAsyncAction* This = WeakThis.Get())
				{
					This->Fail(Error);
				}
			});
		}
	});
}

void UAvatarForgeAsyncAction::OnGameThread(TUniqueFunction<void(UAvatarForgeAsyncAction&)> Fn)
{
	TWeakObjectPtr<UAvatarForgeAsyncAction> WeakThis(this);
	AsyncTask(ENamedThreads::GameThread, [WeakThis, Fn = MoveTemp(Fn)]() mutable
	{
		UAvatarForgeAsyncAction* This = WeakThis.Get();
		if (This && !This->bFinished)
		{
			Fn(*This);
		}
	});
}

void UAvatarForgeAsyncAction::Fail(const FString& Error)
{
	if (bFinished)
	{
		return;
	}
	BroadcastFailure(Error);
	Finish();
}

void UAvatarForgeAsyncAction::Finish()
{
	if (bFinished)
	{
		return;
	}
	bFinished = true;
	ActiveClient.Reset();
	SetReadyToDestroy();
	if (bRooted)
	{
		RemoveFromRoot();
		bRooted = false;
	}
}

// ---------------------------------------------------------------------------------------------
// CreateAvatar

UAvatarForgeCreateAvatarAction* UAvatarForgeCreateAvatarAction::CreateAvatarFromFile(UObject* WorldContextObject,
	const FString& PortraitFile, const FString& DisplayName, const FString& Generator)
{
	UAvatarForgeCreateAvatarAction* Action = NewObject<UAvatarForgeCreateAvatarAction>();
	Action->PortraitFile = PortraitFile;
	Action->DisplayName = DisplayName.IsEmpty() ? FPaths::GetBaseFilename(PortraitFile) : DisplayName;
	Action->Generator = Generator;
	Action->Prepare(WorldContextObject);
	return Action;
}

UAvatarForgeCreateAvatarAction* UAvatarForgeCreateAvatarAction::CreateAvatarFromBytes(UObject* WorldContextObject,
	const TArray<uint8>& Portrait, const FString& DisplayName, const FString& Generator)
{
	UAvatarForgeCreateAvatarAction* Action = NewObject<UAvatarForgeCreateAvatarAction>();
	Action->PortraitBytes = Portrait;
	Action->DisplayName = DisplayName;
	Action->Generator = Generator;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeCreateAvatarAction::Start(FAvatarForgeClientPtr Client)
{
	TWeakObjectPtr<UAvatarForgeCreateAvatarAction> WeakThis(this);
	RunOnWorker([WeakThis, File = PortraitFile, Bytes = PortraitBytes, Name = DisplayName, Gen = Generator](avatarforge::Client& C) mutable
	{
		if (!File.IsEmpty() && !FFileHelper::LoadFileToArray(Bytes, *File))
		{
			throw avatarforge::Error(grpc::StatusCode::INVALID_ARGUMENT, "cannot read the portrait file " + AvatarForge::ToStd(File));
		}
		avatarforge::CreateOptions Options;
		Options.display_name = AvatarForge::ToStd(Name);
		Options.generator = AvatarForge::ToStd(Gen);
		const avatarforge::AvatarInfo Info = C.CreateAvatar(AvatarForge::ToStdBytes(Bytes), [WeakThis](const avatarforge::Progress& P)
		{
			const FAvatarForgeProgress Progress = AvatarForge::FromClient(P);
			AsyncTask(ENamedThreads::GameThread, [WeakThis, Progress]()
			{
				if (UAvatarForgeCreateAvatarAction* This = WeakThis.Get())
				{
					This->OnProgress.Broadcast(Progress, FAvatarForgeAvatarInfo(), FString());
				}
			});
		}, Options);
		TArray<uint8> Thumbnail;
		FAvatarForgeAvatarInfo Avatar = AvatarForge::FromClient(Info, &Thumbnail);
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Avatar = MoveTemp(Avatar), Thumbnail = MoveTemp(Thumbnail)]() mutable
		{
			if (UAvatarForgeCreateAvatarAction* This = WeakThis.Get())
			{
				Avatar.Thumbnail = AvatarForge::TextureFromPng(Thumbnail);
				FAvatarForgeProgress Done;
				Done.Stage = TEXT("done");
				Done.Fraction = 1.0f;
				This->OnCompleted.Broadcast(Done, Avatar, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeCreateAvatarAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(FAvatarForgeProgress(), FAvatarForgeAvatarInfo(), Error);
}

// ---------------------------------------------------------------------------------------------
// GetAvatar / ListAvatars / DeleteAvatar / GetServerInfo

UAvatarForgeGetAvatarAction* UAvatarForgeGetAvatarAction::GetAvatar(UObject* WorldContextObject, const FString& AvatarId,
	bool bIncludeThumbnail)
{
	UAvatarForgeGetAvatarAction* Action = NewObject<UAvatarForgeGetAvatarAction>();
	Action->AvatarId = AvatarId;
	Action->bIncludeThumbnail = bIncludeThumbnail;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeGetAvatarAction::Start(FAvatarForgeClientPtr Client)
{
	TWeakObjectPtr<UAvatarForgeGetAvatarAction> WeakThis(this);
	RunOnWorker([WeakThis, Id = AvatarId, bThumb = bIncludeThumbnail](avatarforge::Client& C)
	{
		TArray<uint8> Thumbnail;
		FAvatarForgeAvatarInfo Avatar = AvatarForge::FromClient(C.Get(AvatarForge::ToStd(Id), bThumb), &Thumbnail);
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Avatar = MoveTemp(Avatar), Thumbnail = MoveTemp(Thumbnail)]() mutable
		{
			if (UAvatarForgeGetAvatarAction* This = WeakThis.Get())
			{
				Avatar.Thumbnail = AvatarForge::TextureFromPng(Thumbnail);
				This->OnCompleted.Broadcast(Avatar, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeGetAvatarAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(FAvatarForgeAvatarInfo(), Error);
}

UAvatarForgeListAvatarsAction* UAvatarForgeListAvatarsAction::ListAvatars(UObject* WorldContextObject)
{
	UAvatarForgeListAvatarsAction* Action = NewObject<UAvatarForgeListAvatarsAction>();
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeListAvatarsAction::Start(FAvatarForgeClientPtr Client)
{
	TWeakObjectPtr<UAvatarForgeListAvatarsAction> WeakThis(this);
	RunOnWorker([WeakThis](avatarforge::Client& C)
	{
		TArray<FAvatarForgeAvatarInfo> Avatars;
		for (const avatarforge::AvatarInfo& Info : C.List())
		{
			Avatars.Add(AvatarForge::FromClient(Info, nullptr));
		}
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Avatars = MoveTemp(Avatars)]()
		{
			if (UAvatarForgeListAvatarsAction* This = WeakThis.Get())
			{
				This->OnCompleted.Broadcast(Avatars, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeListAvatarsAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(TArray<FAvatarForgeAvatarInfo>(), Error);
}

UAvatarForgeDeleteAvatarAction* UAvatarForgeDeleteAvatarAction::DeleteAvatar(UObject* WorldContextObject, const FString& AvatarId)
{
	UAvatarForgeDeleteAvatarAction* Action = NewObject<UAvatarForgeDeleteAvatarAction>();
	Action->AvatarId = AvatarId;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeDeleteAvatarAction::Start(FAvatarForgeClientPtr Client)
{
	TWeakObjectPtr<UAvatarForgeDeleteAvatarAction> WeakThis(this);
	RunOnWorker([WeakThis, Id = AvatarId](avatarforge::Client& C)
	{
		const bool bDeleted = C.Delete(AvatarForge::ToStd(Id));
		AsyncTask(ENamedThreads::GameThread, [WeakThis, bDeleted]()
		{
			if (UAvatarForgeDeleteAvatarAction* This = WeakThis.Get())
			{
				This->OnCompleted.Broadcast(bDeleted, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeDeleteAvatarAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(false, Error);
}

UAvatarForgeGetServerInfoAction* UAvatarForgeGetServerInfoAction::GetServerInfo(UObject* WorldContextObject)
{
	UAvatarForgeGetServerInfoAction* Action = NewObject<UAvatarForgeGetServerInfoAction>();
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeGetServerInfoAction::Start(FAvatarForgeClientPtr Client)
{
	TWeakObjectPtr<UAvatarForgeGetServerInfoAction> WeakThis(this);
	RunOnWorker([WeakThis](avatarforge::Client& C)
	{
		const FAvatarForgeServerInfo Info = AvatarForge::FromClient(C.Info());
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Info]()
		{
			if (UAvatarForgeGetServerInfoAction* This = WeakThis.Get())
			{
				This->OnCompleted.Broadcast(Info, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeGetServerInfoAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(FAvatarForgeServerInfo(), Error);
}

// ---------------------------------------------------------------------------------------------
// Render

UAvatarForgeRenderFrameAction* UAvatarForgeRenderFrameAction::RenderFrame(UObject* WorldContextObject, const FString& AvatarId,
	const FAvatarForgeRenderSettings& Settings)
{
	UAvatarForgeRenderFrameAction* Action = NewObject<UAvatarForgeRenderFrameAction>();
	Action->AvatarId = AvatarId;
	Action->Settings = Settings;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeRenderFrameAction::Start(FAvatarForgeClientPtr Client)
{
	avatarforge::RenderParams Params;
	Params.avatar_id = AvatarForge::ToStd(AvatarId);
	Params.frame.camera = AvatarForge::ToClient(Settings.Camera);
	Params.frame.expression = AvatarForge::ToClient(Settings.Expression);
	Params.frame.head_pose = AvatarForge::ToClient(Settings.HeadPose);
	Params.frame.eye.assign(Settings.Eye.GetData(), Settings.Eye.GetData() + Settings.Eye.Num());
	Params.options = AvatarForge::ToClient(Settings.Options);

	TWeakObjectPtr<UAvatarForgeRenderFrameAction> WeakThis(this);
	RunOnWorker([WeakThis, Params](avatarforge::Client& C)
	{
		AvatarForge::FDecodedFrame Decoded;
		FString Error;
		if (!AvatarForge::DecodeFrame(C.Render(Params), Decoded, Error))
		{
			throw avatarforge::Error(grpc::StatusCode::DATA_LOSS, AvatarForge::ToStd(Error));
		}
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Decoded = MoveTemp(Decoded)]() mutable
		{
			if (UAvatarForgeRenderFrameAction* This = WeakThis.Get())
			{
				UTexture2D* Texture = AvatarForge::EnsureFrameTexture(nullptr, Decoded.Info.Width, Decoded.Info.Height);
				AvatarForge::UploadPixels(Texture, MoveTemp(Decoded.Pixels), Decoded.Info.Width, Decoded.Info.Height);
				This->OnCompleted.Broadcast(Texture, Decoded.Info, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeRenderFrameAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(nullptr, FAvatarForgeFrameInfo(), Error);
}

// ---------------------------------------------------------------------------------------------
// TrackFace

UAvatarForgeTrackFacesAction* UAvatarForgeTrackFacesAction::TrackFaces(UObject* WorldContextObject,
	const TArray<FString>& FramePaths, float FrameRate, EAvatarForgeStreamMode Mode)
{
	UAvatarForgeTrackFacesAction* Action = NewObject<UAvatarForgeTrackFacesAction>();
	Action->FramePaths = FramePaths;
	Action->FrameRate = FrameRate;
	Action->Mode = Mode;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeTrackFacesAction::Start(FAvatarForgeClientPtr Client)
{
	std::vector<avatarforge::TrackFrame> Frames;
	for (int32 K = 0; K < FramePaths.Num(); ++K)
	{
		TArray<uint8> Bytes;
		if (!FFileHelper::LoadFileToArray(Bytes, *FramePaths[K]))
		{
			Fail(FString::Printf(TEXT("cannot read the frame %s"), *FramePaths[K]));
			return;
		}
		Frames.push_back({static_cast<std::uint64_t>(K), AvatarForge::ToStdBytes(Bytes), 0.0});
	}
	avatarforge::TrackOptions Options;
	Options.mode = AvatarForge::ToClient(Mode);
	Options.frame_rate = FrameRate;

	TWeakObjectPtr<UAvatarForgeTrackFacesAction> WeakThis(this);
	RunOnWorker([WeakThis, Frames = MoveTemp(Frames), Options](avatarforge::Client& C)
	{
		TArray<FAvatarForgeTrackedFace> Faces = AvatarForge::FromClient(C.Track(Frames, Options));
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Faces = MoveTemp(Faces)]()
		{
			if (UAvatarForgeTrackFacesAction* This = WeakThis.Get())
			{
				This->OnCompleted.Broadcast(Faces, FString());
				This->Finish();
			}
		});
	});
}

void UAvatarForgeTrackFacesAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(TArray<FAvatarForgeTrackedFace>(), Error);
}

// ---------------------------------------------------------------------------------------------
// RenderStream

UAvatarForgeStartRenderStreamAction* UAvatarForgeStartRenderStreamAction::StartRenderStream(UObject* WorldContextObject,
	const FString& AvatarId, const FAvatarForgeFrameOptions& Options, EAvatarForgeStreamMode Mode)
{
	UAvatarForgeStartRenderStreamAction* Action = NewObject<UAvatarForgeStartRenderStreamAction>();
	Action->AvatarId = AvatarId;
	Action->Options = Options;
	Action->Mode = Mode;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeStartRenderStreamAction::Start(FAvatarForgeClientPtr Client)
{
	// GetServerInfo first: it checks address and token before the stream exists, and gives the
	// canonical expression names that filter Live Link curves.
	TWeakObjectPtr<UAvatarForgeStartRenderStreamAction> WeakThis(this);
	RunOnWorker([WeakThis](avatarforge::Client& C)
	{
		const FAvatarForgeServerInfo Info = AvatarForge::FromClient(C.Info());
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Names = Info.ExpressionNames]()
		{
			if (UAvatarForgeStartRenderStreamAction* This = WeakThis.Get())
			{
				This->OpenOnGameThread(Names);
			}
		});
	});
}

void UAvatarForgeStartRenderStreamAction::OpenOnGameThread(const TArray<FString>& ExpressionNames)
{
	UObject* Outer = UAvatarForgeSubsystem::Find(WorldContext.Get());
	Stream = NewObject<UAvatarForgeRenderStream>(Outer ? Outer : GetTransientPackage());
	Stream->OnFrameNative.AddWeakLambda(this, [this](UTexture2D* Texture, const FAvatarForgeFrameInfo& Frame)
	{
		OnFrame.Broadcast(Stream, Texture, Frame, FString());
	});
	Stream->OnClosedNative.AddWeakLambda(this, [this](const FString& Error)
	{
		OnClosed.Broadcast(Stream, Stream ? Stream->GetTexture() : nullptr, Stream ? Stream->GetLastFrameInfo() : FAvatarForgeFrameInfo(), Error);
		Finish();
	});
	FString Error;
	if (!Stream->Open(ActiveClient, AvatarId, Options, Mode, ExpressionNames, Error))
	{
		Fail(Error);
		return;
	}
	OnStarted.Broadcast(Stream, nullptr, FAvatarForgeFrameInfo(), FString());
}

void UAvatarForgeStartRenderStreamAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(Stream, nullptr, FAvatarForgeFrameInfo(), Error);
}

// ---------------------------------------------------------------------------------------------
// SetExpression

UAvatarForgeSetExpressionAction* UAvatarForgeSetExpressionAction::SetExpressionWeights(UObject* WorldContextObject,
	UAvatarForgeRenderStream* Stream, const TArray<float>& Weights)
{
	UAvatarForgeSetExpressionAction* Action = NewObject<UAvatarForgeSetExpressionAction>();
	Action->Stream = Stream;
	Action->Source = ESource::Weights;
	Action->Weights = Weights;
	Action->Prepare(WorldContextObject);
	return Action;
}

UAvatarForgeSetExpressionAction* UAvatarForgeSetExpressionAction::SetExpressionByName(UObject* WorldContextObject,
	UAvatarForgeRenderStream* Stream, const TMap<FString, float>& Weights)
{
	UAvatarForgeSetExpressionAction* Action = NewObject<UAvatarForgeSetExpressionAction>();
	Action->Stream = Stream;
	Action->Source = ESource::Named;
	Action->Named = Weights;
	Action->Prepare(WorldContextObject);
	return Action;
}

UAvatarForgeSetExpressionAction* UAvatarForgeSetExpressionAction::SetExpressionFromLiveLink(UObject* WorldContextObject,
	UAvatarForgeRenderStream* Stream, FLiveLinkSubjectName Subject, bool bApplyHeadRotation)
{
	UAvatarForgeSetExpressionAction* Action = NewObject<UAvatarForgeSetExpressionAction>();
	Action->Stream = Stream;
	Action->Source = ESource::LiveLink;
	Action->Subject = Subject;
	Action->bApplyHeadRotation = bApplyHeadRotation;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeSetExpressionAction::Activate()
{
	// The stream carries its own connection; no client lookup needed.
	Start(nullptr);
}

void UAvatarForgeSetExpressionAction::Start(FAvatarForgeClientPtr)
{
	if (!Stream || !Stream->IsOpen())
	{
		Fail(TEXT("AvatarForge: SetExpression needs an open render stream"));
		return;
	}
	FrameHandle = Stream->OnFrameNative.AddUObject(this, &UAvatarForgeSetExpressionAction::HandleFrame);
	ClosedHandle = Stream->OnClosedNative.AddUObject(this, &UAvatarForgeSetExpressionAction::HandleClosed);
	FString Error;
	switch (Source)
	{
	case ESource::Weights: WaitingForSeq = Stream->SetExpressionWeights(Weights); break;
	case ESource::Named: WaitingForSeq = Stream->SetExpressionNamed(Named); break;
	case ESource::LiveLink: WaitingForSeq = Stream->SetExpressionFromLiveLink(Subject, bApplyHeadRotation, Error); break;
	}
	if (WaitingForSeq <= 0)
	{
		Unbind();
		Fail(Error.IsEmpty() ? FString(TEXT("AvatarForge: the render stream is closed")) : Error);
	}
}

void UAvatarForgeSetExpressionAction::HandleFrame(UTexture2D* Texture, const FAvatarForgeFrameInfo& Frame)
{
	// Frames are coalesced, so a later seq also shows this expression.
	if (Frame.Seq < WaitingForSeq)
	{
		return;
	}
	Unbind();
	OnRendered.Broadcast(Texture, Frame, FString());
	Finish();
}

void UAvatarForgeSetExpressionAction::HandleClosed(const FString& Error)
{
	Unbind();
	Fail(Error.IsEmpty() ? FString(TEXT("AvatarForge: the render stream closed before the expression was rendered")) : Error);
}

void UAvatarForgeSetExpressionAction::Unbind()
{
	if (Stream)
	{
		Stream->OnFrameNative.Remove(FrameHandle);
		Stream->OnClosedNative.Remove(ClosedHandle);
	}
}

void UAvatarForgeSetExpressionAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(Stream ? Stream->GetTexture() : nullptr, FAvatarForgeFrameInfo(), Error);
}

// ---------------------------------------------------------------------------------------------
// Export

FString UAvatarForgeExportAction::DefaultExportDirectory(const FString& AvatarId)
{
	return FPaths::ConvertRelativePathToFull(FPaths::Combine(FPaths::ProjectSavedDir(), TEXT("AvatarForge"), AvatarId));
}

UAvatarForgeExportAction* UAvatarForgeExportAction::ExportAvatar(UObject* WorldContextObject, const FString& AvatarId,
	const TArray<EAvatarForgeExportFormat>& Formats, const FAvatarForgeExportOptions& Options, const FString& OutputDirectory,
	bool bImportIntoProject, const FString& ContentPath)
{
	UAvatarForgeExportAction* Action = NewObject<UAvatarForgeExportAction>();
	Action->AvatarId = AvatarId;
	Action->Formats = Formats.Num() > 0 ? Formats : TArray<EAvatarForgeExportFormat>{EAvatarForgeExportFormat::Glb, EAvatarForgeExportFormat::Tables};
	Action->Options = Options;
	Action->OutputDirectory = OutputDirectory.IsEmpty() ? DefaultExportDirectory(AvatarId) : OutputDirectory;
	Action->bImportIntoProject = bImportIntoProject;
	Action->ContentPath = ContentPath.IsEmpty() ? FString::Printf(TEXT("/Game/AvatarForge/%s"), *AvatarId.Left(12)) : ContentPath;
	Action->Prepare(WorldContextObject);
	return Action;
}

void UAvatarForgeExportAction::Start(FAvatarForgeClientPtr Client)
{
	std::vector<avatarforge::ExportFormat> ClientFormats;
	for (EAvatarForgeExportFormat Format : Formats)
	{
		ClientFormats.push_back(AvatarForge::ToClient(Format));
	}
	TWeakObjectPtr<UAvatarForgeExportAction> WeakThis(this);
	RunOnWorker([WeakThis, Id = AvatarId, ClientFormats, Opts = Options, Dir = OutputDirectory](avatarforge::Client& C)
	{
		avatarforge::ExportOptions ClientOptions;
		FString Error;
		if (!AvatarForge::ToClient(Opts, ClientOptions, Error))
		{
			throw avatarforge::Error(grpc::StatusCode::INVALID_ARGUMENT, AvatarForge::ToStd(Error));
		}
		ClientOptions.progress = [WeakThis](const avatarforge::Progress& P)
		{
			const FAvatarForgeProgress Progress = AvatarForge::FromClient(P);
			AsyncTask(ENamedThreads::GameThread, [WeakThis, Progress]()
			{
				if (UAvatarForgeExportAction* This = WeakThis.Get())
				{
					This->OnProgress.Broadcast(Progress, TArray<FString>(), TArray<FString>(), FString());
				}
			});
		};
		TArray<FString> Files;
		for (const std::string& Path : C.Export(AvatarForge::ToStd(Id), ClientFormats, AvatarForge::ToStd(Dir), ClientOptions))
		{
			Files.Add(AvatarForge::ToFString(Path));
		}
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Files]()
		{
			if (UAvatarForgeExportAction* This = WeakThis.Get())
			{
				This->Complete(Files);
			}
		});
	});
}

void UAvatarForgeExportAction::Complete(const TArray<FString>& Files)
{
	TArray<FString> Assets;
	if (bImportIntoProject)
	{
		FAvatarForgeImportHook& Import = FAvatarForgeModule::Get().OnImportExportedFiles();
		if (!Import.IsBound())
		{
			Fail(TEXT("AvatarForge: importing into the project needs the editor (the AvatarForgeEditor module)"));
			return;
		}
		FString Error;
		if (!Import.Execute(Files, ContentPath, Assets, Error))
		{
			Fail(Error);
			return;
		}
	}
	FAvatarForgeProgress Done;
	Done.Stage = TEXT("done");
	Done.Fraction = 1.0f;
	OnCompleted.Broadcast(Done, Files, Assets, FString());
	Finish();
}

void UAvatarForgeExportAction::BroadcastFailure(const FString& Error)
{
	OnFailed.Broadcast(FAvatarForgeProgress(), TArray<FString>(), TArray<FString>(), Error);
}
