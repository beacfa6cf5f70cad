#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeModule.h"
#include "AvatarForgeTypes.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "AvatarForgeSubsystem.generated.h"

class UAvatarForgeRenderStream;

/**
 * Owns the game's connection to the AvatarForge server (built from Project Settings > AvatarForge
 * at startup) and the render streams started through it, which it stops on shutdown.
 */
UCLASS()
class AVATARFORGE_API UAvatarForgeSubsystem : public UGameInstanceSubsystem
{
	GENERATED_BODY()

public:
	virtual void Initialize(FSubsystemCollectionBase& Collection) override;
	virtual void Deinitialize() override;

	/** Replaces the connection; streams already running keep their own. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge")
	bool Connect(const FAvatarForgeConnectionSettings& Settings, FString& OutError);

	/** Reconnects with the current project settings. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge")
	bool ConnectWithProjectSettings(FString& OutError);

	UFUNCTION(BlueprintPure, Category = "AvatarForge")
	bool IsConnected() const;

	UFUNCTION(BlueprintPure, Category = "AvatarForge")
	FString GetServerAddress() const;

	/** The render streams currently open through this game instance. */
	UFUNCTION(BlueprintPure, Category = "AvatarForge")
	TArray<UAvatarForgeRenderStream*> GetActiveStreams() const;

	FAvatarForgeClientPtr GetClient() const;

	/** The subsystem's client when the context has a game instance, else the module's client from project settings. */
	static FAvatarForgeClientPtr ResolveClient(const UObject* WorldContextObject, FString& OutError);
	static UAvatarForgeSubsystem* Find(const UObject* WorldContextObject);

	void TrackStream(UAvatarForgeRenderStream* Stream);
	void ForgetStream(UAvatarForgeRenderStream* Stream);

private:
	mutable FCriticalSection ClientLock;
	FAvatarForgeClientPtr Client;
	FString ServerAddress;

	UPROPERTY(Transient)
	TArray<TObjectPtr<UAvatarForgeRenderStream>> Streams;
};
