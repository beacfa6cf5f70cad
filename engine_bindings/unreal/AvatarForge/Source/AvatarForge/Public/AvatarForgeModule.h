#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleInterface.h"
#include "Templates/SharedPointer.h"

struct FAvatarForgeConnectionSettings;

namespace avatarforge
{
class Client;
}

/** The engine-agnostic client, shared between the game thread and worker threads. */
using FAvatarForgeClientPtr = TSharedPtr<avatarforge::Client, ESPMode::ThreadSafe>;

/** Imports exported files (GLB, tables) into the project; bound by the editor module. Returns false with OutError on failure. */
DECLARE_DELEGATE_RetVal_FourParams(bool, FAvatarForgeImportHook, const TArray<FString>& /*Files*/, const FString& /*ContentPath*/,
	TArray<FString>& /*OutAssetPaths*/, FString& /*OutError*/);

class AVATARFORGE_API FAvatarForgeModule : public IModuleInterface
{
public:
	static FAvatarForgeModule& Get();

	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

	/** Builds a client for the given connection; no network traffic happens until the first call. */
	static FAvatarForgeClientPtr CreateClient(const FAvatarForgeConnectionSettings& Settings, FString& OutError);

	/**
	 * A client from the project settings, for callers without a game instance (editor tools,
	 * editor utility widgets). Rebuilt after ResetDefaultClient().
	 */
	FAvatarForgeClientPtr GetDefaultClient(FString& OutError);
	void ResetDefaultClient();

	FAvatarForgeImportHook& OnImportExportedFiles() { return ImportHook; }

private:
	FCriticalSection DefaultClientLock;
	FAvatarForgeClientPtr DefaultClient;
	FAvatarForgeImportHook ImportHook;
	FDelegateHandle SettingsChangedHandle;
};
