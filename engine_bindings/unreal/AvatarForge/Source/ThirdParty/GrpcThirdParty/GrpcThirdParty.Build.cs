// Prebuilt gRPC C++ / protobuf / abseil (and their dependencies) for the AvatarForge client.
//
// Layout expected under this directory (see engine_bindings/unreal/README.md for how to produce it):
//   include/                      grpcpp/, grpc/, google/protobuf/, absl/, ... headers
//   bin/<Platform>/               protoc[.exe] and grpc_cpp_plugin[.exe] of the SAME versions (used by sync_client.py)
//   lib/Win64/*.lib               static libraries (MD runtime, Release)
//   lib/Linux/*.a                 static libraries built with the engine's clang toolchain and libc++
//   lib/Mac/*.a                   static libraries (universal or arm64 + x86_64)
// Every library found in the platform's lib directory is linked, so the set can follow whichever
// gRPC release (and abseil split) was built.
using System;
using System.IO;
using System.Linq;
using UnrealBuildTool;

public class GrpcThirdParty : ModuleRules
{
	public GrpcThirdParty(ReadOnlyTargetRules Target) : base(Target)
	{
		Type = ModuleType.External;

		string Root = ModuleDirectory;
		string IncludeDir = Path.Combine(Root, "include");
		string Platform = Target.Platform.ToString();
		string LibDir = Path.Combine(Root, "lib", Platform);

		if (!Directory.Exists(IncludeDir) || !Directory.Exists(LibDir))
		{
			throw new BuildException(
				"AvatarForge: prebuilt gRPC is missing. Expected headers in '{0}' and libraries in '{1}'. " +
				"See engine_bindings/unreal/README.md (\"Bringing gRPC into the engine\").", IncludeDir, LibDir);
		}

		PublicSystemIncludePaths.Add(IncludeDir);

		string Extension = Target.Platform == UnrealTargetPlatform.Win64 ? ".lib" : ".a";
		string[] Libraries = Directory.GetFiles(LibDir, "*" + Extension).OrderBy(Name => Name, StringComparer.Ordinal).ToArray();
		if (Libraries.Length == 0)
		{
			throw new BuildException("AvatarForge: no '{0}' libraries in '{1}'.", Extension, LibDir);
		}
		PublicAdditionalLibraries.AddRange(Libraries);

		// Without its own TLS library (BoringSSL/OpenSSL) the set was built against the engine's
		// OpenSSL, which is then linked from the engine (same version, or symbols will not match).
		bool bBundlesSsl = Libraries.Any(File =>
		{
			string Name = Path.GetFileNameWithoutExtension(File).ToLowerInvariant();
			return Name.Contains("ssl") || Name == "crypto" || Name == "libcrypto";
		});
		if (!bBundlesSsl)
		{
			AddEngineThirdPartyPrivateStaticDependencies(Target, "OpenSSL");
		}
		// zlib likewise comes from the engine unless the set has its own.
		if (!Libraries.Any(File => Path.GetFileNameWithoutExtension(File).ToLowerInvariant().Contains("zlib") ||
		                           Path.GetFileNameWithoutExtension(File).ToLowerInvariant() == "libz"))
		{
			AddEngineThirdPartyPrivateStaticDependencies(Target, "zlib");
		}

		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			// Winsock, crypto and the system certificate store used by gRPC's TLS and c-ares.
			PublicSystemLibraries.AddRange(new string[] { "ws2_32.lib", "crypt32.lib", "iphlpapi.lib", "advapi32.lib", "bcrypt.lib", "dbghelp.lib" });
			PublicDefinitions.Add("_WIN32_WINNT=0x0A00");
		}
		else if (Target.Platform == UnrealTargetPlatform.Linux)
		{
			PublicSystemLibraries.AddRange(new string[] { "pthread", "dl", "rt" });
		}
		else if (Target.Platform == UnrealTargetPlatform.Mac)
		{
			PublicFrameworks.AddRange(new string[] { "CoreFoundation", "Security" });
		}
	}
}
