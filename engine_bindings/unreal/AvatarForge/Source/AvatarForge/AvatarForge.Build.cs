// Runtime module: the game-instance subsystem, Blueprint async actions, the render-stream texture
// bridge and Live Link sampling, on top of the engine-agnostic client in AvatarForgeClient.
using UnrealBuildTool;

public class AvatarForge : ModuleRules
{
	public AvatarForge(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		// The client reports failures as avatarforge::Error exceptions, caught in this module.
		bEnableExceptions = true;

		PublicDependencyModuleNames.AddRange(new string[]
		{
			"Core",
			"CoreUObject",
			"Engine",
			"DeveloperSettings",
			"LiveLinkInterface",
		});

		PrivateDependencyModuleNames.AddRange(new string[]
		{
			"AvatarForgeClient",
			"GrpcThirdParty",
			"ImageWrapper",
			"RenderCore",
			"RHI",
		});
	}
}
