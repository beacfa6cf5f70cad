// The module only hosts the engine-agnostic client; it has no startup work of its own.
#include "Modules/ModuleManager.h"

IMPLEMENT_MODULE(FDefaultModuleImpl, AvatarForgeClient)
