#pragma once

#include "CoreMinimal.h"
#include "AvatarForgeTypes.h"
#include "Kismet/BlueprintFunctionLibrary.h"
#include "LiveLinkTypes.h"
#include "AvatarForgeLiveLink.generated.h"

/** Reads ARKit expression curves (e.g. from the Live Link Face app) out of a Live Link subject. */
UCLASS()
class AVATARFORGE_API UAvatarForgeLiveLinkLibrary : public UBlueprintFunctionLibrary
{
	GENERATED_BODY()

public:
	/**
	 * Samples the subject's latest frame (Basic role: named float properties). Curves named like ARKit
	 * blendshapes (JawOpen, eyeBlinkLeft, ...) become the expression's named weights, clamped to [0, 1];
	 * HeadYaw/HeadPitch/HeadRoll times HeadRotationScale become the head pose (radians).
	 * KnownExpressionNames, when not empty (e.g. ServerInfo.ExpressionNames), drops every other curve.
	 */
	UFUNCTION(BlueprintCallable, Category = "AvatarForge|Live Link")
	static bool EvaluateLiveLinkExpression(FLiveLinkSubjectName Subject, const TArray<FString>& KnownExpressionNames,
		float HeadRotationScale, FAvatarForgeExpression& OutExpression, FAvatarForgeHeadPose& OutHeadPose, bool& bOutHasHeadPose,
		FString& OutError);
};
