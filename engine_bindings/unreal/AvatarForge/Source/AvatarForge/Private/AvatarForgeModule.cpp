#include "AvatarForgeModule.h"

#include "AvatarForgeConversions.h"
#include "AvatarForgeSettings.h"
#include "IImageWrapperModule.h"
#include "Modules/ModuleManager.h"

DEFINE_LOG_CATEGORY_STATIC(LogAvatarForge, Log, All);

FAvatarForgeModule& FAvatarForgeModule::Get()
{
	return FModuleManager::LoadModuleChecked<FAvatarForgeModule>(TEXT("AvatarForge"));
}

void FAvatarForgeModule::StartupModule()
{
	// Frame decoding runs on the client's reader thread, which must not be the one to load modules.
	FModuleManager::LoadModuleChecked<IImageWrapperModule>(TEXT("ImageWrapper"));

#if WITH_EDITOR
	if (UAvatarForgeSettings* Settings = GetMutableDefault<UAvatarForgeSettings>())
	{
		SettingsChangedHandle = Settings->OnSettingChanged().AddLambda(
			[this](UObject*, FPropertyChangedEvent&) { ResetDefaultClient(); });
	}
#endif
}

void FAvatarForgeModule::ShutdownModule()
{
#if WITH_EDITOR
	if (UObjectInitialized() && SettingsChangedHandle.IsValid())
	{
		if (UAvatarForgeSettings* Settings = GetMutableDefault<UAvatarForgeSettings>())
		{
			Settings->OnSettingChanged().Remove(SettingsChangedHandle);
		}
	}
#endif
	ImportHook.Unbind();
	ResetDefaultClient();
}

FAvatarForgeClientPtr FAvatarForgeModule::CreateClient(const FAvatarForgeConnectionSettings& Settings, FString& OutError)
{
	bool bOk = false;
	avatarforge::ClientOptions Options = AvatarForge::ToClient(Settings, OutError, bOk);
	if (!bOk)
	{
		return nullptr;
	}
	FAvatarForgeClientPtr Client;
	AvatarForge::RunGuarded([&] { Client = MakeShared<avatarforge::Client, ESPMode::ThreadSafe>(std::move(Options)); }, OutError);
	if (!Client.IsValid())
	{
		UE_LOG(LogAvatarForge, Warning, TEXT("%s"), *OutError);
	}
	return Client;
}

FAvatarForgeClientPtr FAvatarForgeModule::GetDefaultClient(FString& OutError)
{
	FScopeLock Lock(&DefaultClientLock);
	if (!DefaultClient.IsValid())
	{
		DefaultClient = CreateClient(GetDefault<UAvatarForgeSettings>()->ToConnectionSettings(), OutError);
	}
	return DefaultClient;
}

void FAvatarForgeModule::ResetDefaultClient()
{
	FScopeLock Lock(&DefaultClientLock);
	DefaultClient.Reset();
}

IMPLEMENT_MODULE(FAvatarForgeModule, AvatarForge)
