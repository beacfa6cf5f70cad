#include "AvatarForgeEditorSubsystem.h"

#include "Async/Async.h"
#include "AvatarForgeAsyncActions.h"
#include "AvatarForgeModule.h"
#include "AvatarForgeSettings.h"
#include "Framework/Notifications/NotificationManager.h"
#include "HAL/FileManager.h"
#include "InterchangeGenericAssetsPipeline.h"
#include "InterchangeGenericMeshPipeline.h"
#include "InterchangeManager.h"
#include "InterchangeSourceData.h"
#include "Misc/FileHelper.h"
#include "Misc/Paths.h"
#include "UObject/Package.h"
#include "Widgets/Notifications/SNotificationList.h"

THIRD_PARTY_INCLUDES_START
#include "avatarforge/client.h"
THIRD_PARTY_INCLUDES_END

#define LOCTEXT_NAMESPACE "AvatarForgeEditor"

namespace
{
FString Utf8(const std::string& Text)
{
	const FUTF8ToTCHAR Converted(Text.data(), static_cast<int32>(Text.size()));
	return FString(Converted.Length(), Converted.Get());
}

std::string ToStd(const FString& Text)
{
	const FTCHARToUTF8 Converted(*Text);
	return std::string(Converted.Get(), Converted.Length());
}
}

void UAvatarForgeEditorSubsystem::Initialize(FSubsystemCollectionBase& Collection)
{
	Super::Initialize(Collection);
	// The runtime Export node imports through this subsystem when it runs inside the editor.
	FAvatarForgeModule::Get().OnImportExportedFiles().BindUObject(this, &UAvatarForgeEditorSubsystem::ImportExportedFiles);
}

void UAvatarForgeEditorSubsystem::Deinitialize()
{
	FAvatarForgeModule::Get().OnImportExportedFiles().Unbind();
	Super::Deinitialize();
}

FString UAvatarForgeEditorSubsystem::ResolveContentPath(const FString& ContentPath, const FString& AvatarId) const
{
	if (!ContentPath.IsEmpty())
	{
		return ContentPath;
	}
	FString Root = GetDefault<UAvatarForgeSettings>()->BakeContentPath.Path;
	if (Root.IsEmpty())
	{
		Root = TEXT("/Game/AvatarForge");
	}
	// Twelve hex digits keep folder names short; collisions among a project's avatars are negligible.
	return FPaths::Combine(Root, AvatarId.Left(12));
}

void UAvatarForgeEditorSubsystem::BakePortrait(const FString& PortraitFile, const FString& ContentPath)
{
	StartBake(PortraitFile, FString(), ContentPath);
}

void UAvatarForgeEditorSubsystem::BakePortraitFolder(const FString& Folder, const FString& ContentPath)
{
	TArray<FString> Found;
	for (const TCHAR* Pattern : {TEXT("*.png"), TEXT("*.jpg"), TEXT("*.jpeg"), TEXT("*.webp")})
	{
		TArray<FString> Names;
		IFileManager::Get().FindFiles(Names, *FPaths::Combine(Folder, Pattern), true, false);
		for (const FString& Name : Names)
		{
			Found.AddUnique(FPaths::Combine(Folder, Name));
		}
	}
	Found.Sort();
	if (Found.Num() == 0)
	{
		Notify(FString::Printf(TEXT("AvatarForge: no portraits (.png, .jpg, .webp) in %s"), *Folder), false);
		return;
	}
	// The server bounds concurrent work itself; queueing every bake lets it schedule them.
	for (const FString& File : Found)
	{
		StartBake(File, FString(), ContentPath);
	}
}

void UAvatarForgeEditorSubsystem::BakeAvatar(const FString& AvatarId, const FString& ContentPath)
{
	StartBake(FString(), AvatarId, ContentPath);
}

void UAvatarForgeEditorSubsystem::StartBake(const FString& PortraitFile, const FString& AvatarId, const FString& ContentPath)
{
	FString Error;
	FAvatarForgeClientPtr Client = FAvatarForgeModule::Get().GetDefaultClient(Error);
	if (!Client.IsValid())
	{
		Notify(Error, false);
		return;
	}
	const UAvatarForgeSettings* Settings = GetDefault<UAvatarForgeSettings>();
	avatarforge::ExportOptions Options;
	Options.texture_size = static_cast<uint32>(FMath::Max(0, Settings->BakeExportOptions.TextureSize));
	Options.static_triangle_budget = static_cast<uint32>(FMath::Max(0, Settings->BakeExportOptions.StaticTriangleBudget));
	Options.without_static_parts = Settings->BakeExportOptions.bWithoutStaticParts;
	Options.without_target_normals = Settings->BakeExportOptions.bWithoutTargetNormals;

	++PendingBakes;
	Notify(FString::Printf(TEXT("AvatarForge: baking %s"), *(PortraitFile.IsEmpty() ? AvatarId : FPaths::GetCleanFilename(PortraitFile))), true);
	TWeakObjectPtr<UAvatarForgeEditorSubsystem> WeakThis(this);
	Async(EAsyncExecution::ThreadPool, [WeakThis, Client, PortraitFile, AvatarId, ContentPath, Options]()
	{
		FString Id = AvatarId;
		TArray<FString> Files;
		FString Failure;
		try
		{
			if (!PortraitFile.IsEmpty())
			{
				TArray<uint8> Bytes;
				if (!FFileHelper::LoadFileToArray(Bytes, *PortraitFile))
				{
					throw avatarforge::Error(grpc::StatusCode::INVALID_ARGUMENT, "cannot read " + ToStd(PortraitFile));
				}
				avatarforge::CreateOptions Create;
				Create.display_name = ToStd(FPaths::GetBaseFilename(PortraitFile));
				Id = Utf8(Client->Create(std::string(reinterpret_cast<const char*>(Bytes.GetData()), Bytes.Num()), nullptr, Create));
			}
			const FString Directory = UAvatarForgeExportAction::DefaultExportDirectory(Id);
			for (const std::string& Path : Client->Export(ToStd(Id), {avatarforge::ExportFormat::kGlb, avatarforge::ExportFormat::kTables},
					 ToStd(Directory), Options))
			{
				Files.Add(Utf8(Path));
			}
		}
		catch (const std::exception& E)
		{
			Failure = FString::Printf(TEXT("AvatarForge: baking %s failed: %s"),
				*(PortraitFile.IsEmpty() ? AvatarId : FPaths::GetCleanFilename(PortraitFile)), *Utf8(E.what()));
		}
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Id, Files, ContentPath, Failure]()
		{
			UAvatarForgeEditorSubsystem* This = WeakThis.Get();
			if (!This)
			{
				return;
			}
			--This->PendingBakes;
			if (!Failure.IsEmpty())
			{
				This->Notify(Failure, false);
				return;
			}
			This->FinishBake(Id, Files, ContentPath);
		});
	});
}

void UAvatarForgeEditorSubsystem::FinishBake(const FString& AvatarId, const TArray<FString>& Files, const FString& ContentPath)
{
	TArray<FString> Assets;
	FString Error;
	if (!ImportExportedFiles(Files, ResolveContentPath(ContentPath, AvatarId), Assets, Error))
	{
		Notify(Error, false);
		return;
	}
	Notify(FString::Printf(TEXT("AvatarForge: imported %d assets for %s (tables in %s)"), Assets.Num(), *AvatarId.Left(12),
		*UAvatarForgeExportAction::DefaultExportDirectory(AvatarId)), true);
}

bool UAvatarForgeEditorSubsystem::ImportExportedFiles(const TArray<FString>& Files, const FString& ContentPath, TArray<FString>& OutAssetPaths,
	FString& OutError)
{
	check(IsInGameThread());
	UInterchangeManager& Manager = UInterchangeManager::GetInterchangeManager();
	int32 Glbs = 0;
	for (const FString& File : Files)
	{
		if (!FPaths::GetExtension(File).Equals(TEXT("glb"), ESearchCase::IgnoreCase))
		{
			continue;
		}
		++Glbs;
		UInterchangeSourceData* Source = UInterchangeManager::CreateSourceData(File);
		// Morph targets live on skeletal meshes in Unreal: force the head (and static parts) to
		// skeletal so the 52 ARKit shapes survive the import.
		UInterchangeGenericAssetsPipeline* Pipeline = NewObject<UInterchangeGenericAssetsPipeline>(GetTransientPackage());
		Pipeline->CommonMeshesProperties->ForceAllMeshAsType = EInterchangeForceMeshType::IFMT_SkeletalMesh;
		Pipeline->MeshPipeline->bImportSkeletalMeshes = true;
		Pipeline->MeshPipeline->bImportMorphTargets = true;

		FImportAssetParameters Parameters;
		Parameters.bIsAutomated = true;
		Parameters.OverridePipelines.Add(FSoftObjectPath(Pipeline));
		UE::Interchange::FAssetImportResultRef Result = Manager.ImportAssetAsync(ContentPath, Source, Parameters);
		Result->WaitUntilDone();
		const TArray<UObject*> Imported = Result->GetImportedObjects();
		if (Imported.Num() == 0)
		{
			OutError = FString::Printf(TEXT("AvatarForge: Interchange imported nothing from %s (is the glTF importer enabled?)"), *File);
			return false;
		}
		for (const UObject* Object : Imported)
		{
			if (Object)
			{
				OutAssetPaths.Add(Object->GetPathName());
			}
		}
	}
	if (Glbs == 0)
	{
		OutError = TEXT("AvatarForge: the export has no .glb to import (include the Glb format)");
		return false;
	}
	return true;
}

void UAvatarForgeEditorSubsystem::CheckServer()
{
	FString Error;
	FAvatarForgeClientPtr Client = FAvatarForgeModule::Get().GetDefaultClient(Error);
	if (!Client.IsValid())
	{
		Notify(Error, false);
		return;
	}
	TWeakObjectPtr<UAvatarForgeEditorSubsystem> WeakThis(this);
	Async(EAsyncExecution::ThreadPool, [WeakThis, Client]()
	{
		FString Message;
		bool bOk = false;
		try
		{
			const avatarforge::ServerInfo Info = Client->Info();
			Message = FString::Printf(TEXT("AvatarForge server %s at %s: generator %s, %s rasterizer on %s"), *Utf8(Info.version),
				*Utf8(Client->options().address), *Utf8(Info.default_generator), *Utf8(Info.rasterizer_backend), *Utf8(Info.device));
			bOk = true;
		}
		catch (const std::exception& E)
		{
			Message = FString::Printf(TEXT("AvatarForge: %s"), *Utf8(E.what()));
		}
		AsyncTask(ENamedThreads::GameThread, [WeakThis, Message, bOk]()
		{
			if (const UAvatarForgeEditorSubsystem* This = WeakThis.Get())
			{
				This->Notify(Message, bOk);
			}
		});
	});
}

void UAvatarForgeEditorSubsystem::Notify(const FString& Message, bool bSuccess) const
{
	FNotificationInfo Info(FText::FromString(Message));
	Info.ExpireDuration = bSuccess ? 4.0f : 8.0f;
	Info.bUseSuccessFailIcons = true;
	if (TSharedPtr<SNotificationItem> Item = FSlateNotificationManager::Get().AddNotification(Info))
	{
		Item->SetCompletionState(bSuccess ? SNotificationItem::CS_Success : SNotificationItem::CS_Fail);
	}
	if (bSuccess)
	{
		UE_LOG(LogTemp, Log, TEXT("%s"), *Message);
	}
	else
	{
		UE_LOG(LogTemp, Warning, TEXT("%s"), *Message);
	}
}

#undef LOCTEXT_NAMESPACE
