#include "AvatarForgeLiveLink.h"

#include "Features/IModularFeatures.h"
#include "ILiveLinkClient.h"
#include "Roles/LiveLinkBasicRole.h"
#include "Roles/LiveLinkBasicTypes.h"

bool UAvatarForgeLiveLinkLibrary::EvaluateLiveLinkExpression(FLiveLinkSubjectName Subject, const TArray<FString>& KnownExpressionNames,
	float HeadRotationScale, FAvatarForgeExpression& OutExpression, FAvatarForgeHeadPose& OutHeadPose, bool& bOutHasHeadPose,
	FString& OutError)
{
	OutExpression = FAvatarForgeExpression();
	OutHeadPose = FAvatarForgeHeadPose();
	bOutHasHeadPose = false;

	IModularFeatures& Features = IModularFeatures::Get();
	if (!Features.IsModularFeatureAvailable(ILiveLinkClient::ModularFeatureName))
	{
		OutError = TEXT("AvatarForge: Live Link is not running (enable the Live Link plugin and add a source)");
		return false;
	}
	ILiveLinkClient& Client = Features.GetModularFeature<ILiveLinkClient>(ILiveLinkClient::ModularFeatureName);

	FLiveLinkSubjectFrameData Data;
	if (!Client.EvaluateFrame_AnyThread(Subject, ULiveLinkBasicRole::StaticClass(), Data))
	{
		OutError = FString::Printf(TEXT("AvatarForge: Live Link subject '%s' has no frame"), *Subject.ToString());
		return false;
	}
	const FLiveLinkBaseStaticData* Static = Data.StaticData.Cast<FLiveLinkBaseStaticData>();
	const FLiveLinkBaseFrameData* Frame = Data.FrameData.Cast<FLiveLinkBaseFrameData>();
	if (!Static || !Frame || Static->PropertyNames.Num() != Frame->PropertyValues.Num())
	{
		OutError = FString::Printf(TEXT("AvatarForge: Live Link subject '%s' has no named curves"), *Subject.ToString());
		return false;
	}

	TSet<FString> Known;
	for (const FString& Name : KnownExpressionNames)
	{
		Known.Add(Name.ToLower());
	}
	int32 HeadAxes = 0;
	for (int32 i = 0; i < Static->PropertyNames.Num(); ++i)
	{
		const FString Name = Static->PropertyNames[i].ToString();
		const float Value = Frame->PropertyValues[i];
		if (!FMath::IsFinite(Value))
		{
			continue;
		}
		if (Name.Equals(TEXT("HeadYaw"), ESearchCase::IgnoreCase))
		{
			OutHeadPose.Yaw = Value * HeadRotationScale;
			++HeadAxes;
		}
		else if (Name.Equals(TEXT("HeadPitch"), ESearchCase::IgnoreCase))
		{
			OutHeadPose.Pitch = Value * HeadRotationScale;
			++HeadAxes;
		}
		else if (Name.Equals(TEXT("HeadRoll"), ESearchCase::IgnoreCase))
		{
			OutHeadPose.Roll = Value * HeadRotationScale;
			++HeadAxes;
		}
		else if (Name.EndsWith(TEXT("Yaw")) || Name.EndsWith(TEXT("Pitch")) || Name.EndsWith(TEXT("Roll")))
		{
			// Eye rotations: the server derives gaze from the eyeLook* curves instead.
			continue;
		}
		else if (Known.Num() == 0 || Known.Contains(Name.ToLower()))
		{
			// Trackers overshoot slightly; the server refuses anything outside [0, 1].
			OutExpression.Named.Add(Name, FMath::Clamp(Value, 0.0f, 1.0f));
		}
	}
	bOutHasHeadPose = HeadAxes == 3;
	if (OutExpression.Named.Num() == 0)
	{
		OutError = FString::Printf(TEXT("AvatarForge: Live Link subject '%s' has no ARKit blendshape curves"), *Subject.ToString());
		return false;
	}
	return true;
}
