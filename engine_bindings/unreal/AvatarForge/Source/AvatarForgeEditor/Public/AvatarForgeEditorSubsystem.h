#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeTypes.h"
#include "EditorSubsystem.h"
#include "AvatarForgeEditorSubsystem.generated.h"

/**
 * Bakes avatars into the project: create on the server (from a portrait) or take an existing
 * avatar, export GLB + blendshape tables, verify them, and import the GLB through Interchange as a
 * skeletal mesh with its 52 ARKit morph targets. Work runs in the background with editor
 * notifications; imports happen on the game thread.
 */
UCLASS()
class AVATARFORGEEDITOR_API UAvatarForgeEditorSubsystem : public UEditorSubsystem
{
	GENERATED_BODY()

public:
	virtual void Initialize(FSubsystemCollectionBase& Collection) override;
	virtual void Deinitialize() override;

	/** Portrait file -> avatar -> assets under ContentPath (empty = project setting + short avatar id). */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Editor")
	void BakePortrait(const FString& PortraitFile, const FString& ContentPath);

	/** Every .png/.jpg/.jpeg/.webp in Folder, one after another; failures are reported and skipped. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Editor")
	void BakePortraitFolder(const FString& Folder, const FString& ContentPath);

	/** An avatar already on the server -> assets under ContentPath. */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Editor")
	void BakeAvatar(const FString& AvatarId, const FString& ContentPath);

	/**
	 * Imports exported files: each .glb through Interchange (skeletal mesh + morph targets, material,
	 * textures). Tables and other files stay where they were written. Game thread only.
	 */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Editor")
	bool ImportExportedFiles(const TArray<FString>& Files, const FString& ContentPath, TArray<FString>& OutAssetPaths, FString& OutError);

	/** Asks the server for its info and shows the result as a notification (connection and token check). */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Editor")
	void CheckServer();

	/** Bakes still running in the background. */
	UFUNCTION(BlueprintPure, Category = "AvatarForge|Editor")
	int32 GetPendingBakes() const { return PendingBakes; }

private:
	void StartBake(const FString& PortraitFile, const FString& AvatarId, const FString& ContentPath);
	void FinishBake(const FString& AvatarId, const TArray<FString>& Files, const FString& ContentPath);
	void Notify(const FString& Message, bool bSuccess) const;
	FString ResolveContentPath(const FString& ContentPath, const FString& AvatarId) const;

	int32 PendingBakes = 0;
};
