// The engine-agnostic AvatarForge C++ client (engine_bindings/cpp) and its generated gRPC code,
// compiled as their own module so that neither the engine's shared PCH nor its macros (check,
// verify, TEXT) ever meet the gRPC/protobuf/abseil headers.
//
// Public/ and Private/ are filled by engine_bindings/unreal/sync_client.py, which copies the
// client sources and generates avatarforge.pb.* / avatarforge.grpc.pb.* with the protoc and
// grpc_cpp_plugin that match the prebuilt libraries in GrpcThirdParty.
using System.IO;
using UnrealBuildTool;

public class AvatarForgeClient : ModuleRules
{
	public AvatarForgeClient(ReadOnlyTargetRules Target) : base(Target)
	{
		string ClientHeader = Path.Combine(ModuleDirectory, "Public", "avatarforge", "client.h");
		string GeneratedDir = Path.Combine(ModuleDirectory, "Private", "Generated");
		if (!File.Exists(ClientHeader) || !File.Exists(Path.Combine(GeneratedDir, "avatarforge", "v1", "avatarforge.grpc.pb.cc")))
		{
			throw new BuildException(
				"AvatarForge: the client sources are not in the plugin yet. Run " +
				"'python engine_bindings/unreal/sync_client.py --protoc <protoc> --grpc-cpp-plugin <grpc_cpp_plugin>' " +
				"(see engine_bindings/unreal/README.md).");
		}

		// Plain C++17 with exceptions and RTTI, as gRPC C++ and the client expect.
		PCHUsage = PCHUsageMode.NoPCHs;
		bUseUnity = false;
		bEnableExceptions = true;
		bUseRTTI = true;
		CppStandard = CppStandardVersion.Cpp17;
		// Generated protobuf code trips the engine's stricter warnings (shadowing, undefined macros).
		ShadowVariableWarningLevel = WarningLevel.Off;
		bEnableUndefinedIdentifierWarnings = false;

		PublicIncludePaths.Add(Path.Combine(ModuleDirectory, "Public"));
		PrivateIncludePaths.Add(Path.Combine(ModuleDirectory, "Private"));
		PrivateIncludePaths.Add(GeneratedDir);

		// The client's classes are exported from this module's DLL under the engine's API macro.
		PublicDefinitions.Add("AVATARFORGE_CLIENT_API=AVATARFORGECLIENT_API");

		PublicDependencyModuleNames.Add("GrpcThirdParty");
		PrivateDependencyModuleNames.Add("Core");
	}
}
