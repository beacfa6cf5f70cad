#include "AvatarForgeSubsystem.h"

#include "AvatarForgeRenderStream.h"
#include "AvatarForgeSettings.h"
#include "Engine/Engine.h"
#include "Engine/GameInstance.h"
#include "Engine/World.h"

void UAvatarForgeSubsystem::Initialize(FSubsystemCollectionBase& Collection)
{
	Super::Initialize(Collection);
	FString Error;
	if (!ConnectWithProjectSettings(Error))
	{
		UE_LOG(LogTemp, Warning, TEXT("%s"), *Error);
	}
}

void UAvatarForgeSubsystem::Deinitialize()
{
	// Copy: stopping a stream removes it from the list.
	const TArray<TObjectPtr<UAvatarForgeRenderStream>> Open = Streams;
	for (UAvatarForgeRenderStream* Stream : Open)
	{
		if (Stream)
		{
			Stream->Stop();
		}
	}
	Streams.Reset();
	{
		FScopeLock Lock(&ClientLock);
		Client.Reset();
	}
	Super::Deinitialize();
}

bool UAvatarForgeSubsystem::Connect(const FAvatarForgeConnectionSettings& Settings, FString& OutError)
{
	FAvatarForgeClientPtr NewClient = FAvatarForgeModule::CreateClient(Settings, OutError);
	if (!NewClient.IsValid())
	{
		return false;
	}
	FScopeLock Lock(&ClientLock);
	Client = NewClient;
	ServerAddress = Settings.ServerAddress;
	return true;
}

bool UAvatarForgeSubsystem::ConnectWithProjectSettings(FString& OutError)
{
	return Connect(GetDefault<UAvatarForgeSettings>()->ToConnectionSettings(), OutError);
}

bool UAvatarForgeSubsystem::IsConnected() const
{
	FScopeLock Lock(&ClientLock);
	return Client.IsValid();
}

FString UAvatarForgeSubsystem::GetServerAddress() const
{
	FScopeLock Lock(&ClientLock);
	return ServerAddress;
}

TArray<UAvatarForgeRenderStream*> UAvatarForgeSubsystem::GetActiveStreams() const
{
	TArray<UAvatarForgeRenderStream*> Out;
	for (UAvatarForgeRenderStream* Stream : Streams)
	{
		if (Stream && Stream->IsOpen())
		{
			Out.Add(Stream);
		}
	}
	return Out;
}

FAvatarForgeClientPtr UAvatarForgeSubsystem::GetClient() const
{
	FScopeLock Lock(&ClientLock);
	return Client;
}

UAvatarForgeSubsystem* UAvatarForgeSubsystem::Find(const UObject* WorldContextObject)
{
	if (!GEngine || !WorldContextObject)
	{
		return nullptr;
	}
	const UWorld* World = GEngine->GetWorldFromContextObject(WorldContextObject, EGetWorldErrorMode::ReturnNull);
	const UGameInstance* GameInstance = World ? World->GetGameInstance() : nullptr;
	return GameInstance ? GameInstance->GetSubsystem<UAvatarForgeSubsystem>() : nullptr;
}

FAvatarForgeClientPtr UAvatarForgeSubsystem::ResolveClient(const UObject* WorldContextObject, FString& OutError)
{
	if (const UAvatarForgeSubsystem* Subsystem = Find(WorldContextObject))
	{
		FAvatarForgeClientPtr Client = Subsystem->GetClient();
		if (!Client.IsValid())
		{
			OutError = TEXT("AvatarForge: not connected; check Project Settings > Plugins > AvatarForge");
		}
		return Client;
	}
	return FAvatarForgeModule::Get().GetDefaultClient(OutError);
}

void UAvatarForgeSubsystem::TrackStream(UAvatarForgeRenderStream* Stream)
{
	Streams.AddUnique(Stream);
}

void UAvatarForgeSubsystem::ForgetStream(UAvatarForgeRenderStream* Stream)
{
	Streams.Remove(Stream);
}
