// Editor module: baking portraits into project assets (create -> export -> Interchange import),
// the Tools menu entries and the import hook the runtime Export node uses inside the editor.
using UnrealBuildTool;

public class AvatarForgeEditor : ModuleRules
{
	public AvatarForgeEditor(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		bEnableExceptions = true;

		PublicDependencyModuleNames.AddRange(new string[]
		{
			"Core",
			"CoreUObject",
			"Engine",
			"EditorSubsystem",
			"AvatarForge",
		});

		PrivateDependencyModuleNames.AddRange(new string[]
		{
			"AvatarForgeClient",
			"GrpcThirdParty",
			"UnrealEd",
			"ToolMenus",
			"Slate",
			"SlateCore",
			"DesktopPlatform",
			"InterchangeCore",
			"InterchangeEngine",
			"InterchangePipelines",
			"AssetRegistry",
		});
	}
}
