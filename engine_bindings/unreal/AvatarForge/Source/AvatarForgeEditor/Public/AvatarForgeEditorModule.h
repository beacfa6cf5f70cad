#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleInterface.h"

/** Adds Tools > AvatarForge (bake a portrait, bake a folder, check the server). */
class FAvatarForgeEditorModule : public IModuleInterface
{
public:
	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

private:
	void RegisterMenus();
	static void BakePortraitFromDialog();
	static void BakeFolderFromDialog();
	static void CheckServer();
};
