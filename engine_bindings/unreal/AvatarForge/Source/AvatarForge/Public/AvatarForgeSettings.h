#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeTypes.h"
#include "Engine/DeveloperSettings.h"
#include "AvatarForgeSettings.generated.h"

/**
 * Project Settings > Plugins > AvatarForge. Stored in DefaultGame.ini; keep real tokens out of
 * source control by leaving Token empty and setting the AVATARFORGE_TOKEN environment variable.
 */
UCLASS(config = Game, defaultconfig, meta = (DisplayName = "AvatarForge"))
class AVATARFORGE_API UAvatarForgeSettings : public UDeveloperSettings
{
	GENERATED_BODY()

public:
	UAvatarForgeSettings();

	virtual FName GetCategoryName() const override;

	/** The connection described by these settings (Token falls back to AVATARFORGE_TOKEN). */
	FAvatarForgeConnectionSettings ToConnectionSettings() const;

	UPROPERTY(config, EditAnywhere, Category = "Server")
	FString ServerAddress = TEXT("127.0.0.1:50051");

	UPROPERTY(config, EditAnywhere, Category = "Server", meta = (PasswordField = true))
	FString Token;

	/** Deadline of non-streaming calls, and of Create/Export as a whole; 0 = none. */
	UPROPERTY(config, EditAnywhere, Category = "Server", meta = (ClampMin = "0", Units = "s"))
	float CallTimeoutSeconds = 300.0f;

	UPROPERTY(config, EditAnywhere, Category = "TLS")
	bool bUseTls = false;

	/** Trusted roots (PEM); empty = the system roots. */
	UPROPERTY(config, EditAnywhere, Category = "TLS", meta = (EditCondition = "bUseTls", FilePathFilter = "pem"))
	FFilePath RootCertificatesFile;

	/** Mutual TLS client certificate chain (PEM). */
	UPROPERTY(config, EditAnywhere, Category = "TLS", meta = (EditCondition = "bUseTls", FilePathFilter = "pem"))
	FFilePath ClientCertificateFile;

	/** Mutual TLS private key (PEM). */
	UPROPERTY(config, EditAnywhere, Category = "TLS", meta = (EditCondition = "bUseTls", FilePathFilter = "pem"))
	FFilePath ClientKeyFile;

	/** Expected server certificate name when it differs from the host in ServerAddress. */
	UPROPERTY(config, EditAnywhere, Category = "TLS", meta = (EditCondition = "bUseTls"))
	FString ServerNameOverride;

	/** Frame settings render streams start with. */
	UPROPERTY(config, EditAnywhere, Category = "Streaming")
	FAvatarForgeFrameOptions DefaultFrameOptions;

	UPROPERTY(config, EditAnywhere, Category = "Streaming")
	EAvatarForgeStreamMode DefaultStreamMode = EAvatarForgeStreamMode::LatestWins;

	/** Where baked avatars are imported (one folder per avatar id below it). */
	UPROPERTY(config, EditAnywhere, Category = "Baking", meta = (ContentDir))
	FDirectoryPath BakeContentPath;

	UPROPERTY(config, EditAnywhere, Category = "Baking")
	FAvatarForgeExportOptions BakeExportOptions;
};
