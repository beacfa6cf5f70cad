#include "AvatarForgeEditorModule.h"

#include "AvatarForgeEditorSubsystem.h"
#include "DesktopPlatformModule.h"
#include "Editor.h"
#include "Framework/Application/SlateApplication.h"
#include "IDesktopPlatform.h"
#include "Modules/ModuleManager.h"
#include "ToolMenus.h"

#define LOCTEXT_NAMESPACE "AvatarForgeEditor"

void FAvatarForgeEditorModule::StartupModule()
{
	UToolMenus::RegisterStartupCallback(FSimpleMulticastDelegate::FDelegate::CreateRaw(this, &FAvatarForgeEditorModule::RegisterMenus));
}

void FAvatarForgeEditorModule::ShutdownModule()
{
	if (UObjectInitialized())
	{
		UToolMenus::UnRegisterStartupCallback(this);
		UToolMenus::UnregisterOwner(this);
	}
}

void FAvatarForgeEditorModule::RegisterMenus()
{
	FToolMenuOwnerScoped OwnerScoped(this);
	UToolMenu* Menu = UToolMenus::Get()->ExtendMenu("LevelEditor.MainMenu.Tools");
	FToolMenuSection& Section = Menu->AddSection("AvatarForge", LOCTEXT("AvatarForgeSection", "AvatarForge"));
	Section.AddMenuEntry("AvatarForgeBakePortrait", LOCTEXT("BakePortrait", "Bake Portrait into Project..."),
		LOCTEXT("BakePortraitTip", "Create an avatar from a portrait on the AvatarForge server and import its GLB with 52 ARKit morph targets."),
		FSlateIcon(), FUIAction(FExecuteAction::CreateStatic(&FAvatarForgeEditorModule::BakePortraitFromDialog)));
	Section.AddMenuEntry("AvatarForgeBakeFolder", LOCTEXT("BakeFolder", "Bake Portrait Folder into Project..."),
		LOCTEXT("BakeFolderTip", "Bake every portrait in a folder (NPC batches)."),
		FSlateIcon(), FUIAction(FExecuteAction::CreateStatic(&FAvatarForgeEditorModule::BakeFolderFromDialog)));
	Section.AddMenuEntry("AvatarForgeCheckServer", LOCTEXT("CheckServer", "Check AvatarForge Server"),
		LOCTEXT("CheckServerTip", "Call GetServerInfo with the project settings' address and token."),
		FSlateIcon(), FUIAction(FExecuteAction::CreateStatic(&FAvatarForgeEditorModule::CheckServer)));
}

void FAvatarForgeEditorModule::BakePortraitFromDialog()
{
	IDesktopPlatform* Platform = FDesktopPlatformModule::Get();
	if (!Platform || !GEditor)
	{
		return;
	}
	TArray<FString> Files;
	const void* Parent = FSlateApplication::Get().FindBestParentWindowHandleForDialogs(nullptr);
	if (Platform->OpenFileDialog(Parent, TEXT("Choose a portrait"), FString(), FString(),
			TEXT("Portraits (*.png;*.jpg;*.jpeg;*.webp)|*.png;*.jpg;*.jpeg;*.webp"), EFileDialogFlags::Multiple, Files))
	{
		for (const FString& File : Files)
		{
			GEditor->GetEditorSubsystem<UAvatarForgeEditorSubsystem>()->BakePortrait(File, FString());
		}
	}
}

void FAvatarForgeEditorModule::BakeFolderFromDialog()
{
	IDesktopPlatform* Platform = FDesktopPlatformModule::Get();
	if (!Platform || !GEditor)
	{
		return;
	}
	FString Folder;
	const void* Parent = FSlateApplication::Get().FindBestParentWindowHandleForDialogs(nullptr);
	if (Platform->OpenDirectoryDialog(Parent, TEXT("Choose a folder of portraits"), FString(), Folder))
	{
		GEditor->GetEditorSubsystem<UAvatarForgeEditorSubsystem>()->BakePortraitFolder(Folder, FString());
	}
}

void FAvatarForgeEditorModule::CheckServer()
{
	if (GEditor)
	{
		GEditor->GetEditorSubsystem<UAvatarForgeEditorSubsystem>()->CheckServer();
	}
}

#undef LOCTEXT_NAMESPACE

IMPLEMENT_MODULE(FAvatarForgeEditorModule, AvatarForgeEditor)
