using System;
using System.Collections.Generic;
using System.Globalization;

namespace AvatarForge.Core
{
    /// <summary>An expression (weights or names) that cannot be used; the message says why.</summary>
    public sealed class ExpressionException : ArgumentException
    {
        public ExpressionException(string message) : base(message) { }
    }

    /// <summary>
    /// The ARKit-52 names in the three orders the tools use, and the index maps between them. Only the
    /// canonical and Unreal lists are spelled out; the Live Link order and every map are derived, with
    /// the same rules as the server's avatar/expressions.py.
    /// </summary>
    public static class ExpressionNames
    {
        public const int Count = 52;
        /// <summary>Trackers round; weights this far outside [0, 1] are clipped rather than refused.</summary>
        public const float WeightTolerance = 1e-6f;

        /// <summary>Canonical order: alphabetical ARKit names (= FaceVerse v3 exBase_52 order).</summary>
        public static readonly string[] Canonical =
        {
            "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
            "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
            "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
            "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
            "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
            "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
            "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
            "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
            "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
            "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft",
            "noseSneerRight", "tongueOut",
        };

        /// <summary>Unreal's EARFaceBlendShape enum order.</summary>
        public static readonly string[] Unreal =
        {
            "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
            "EyeSquintLeft", "EyeWideLeft",
            "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
            "EyeSquintRight", "EyeWideRight",
            "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker",
            "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
            "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight", "MouthRollLower",
            "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
            "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight",
            "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
            "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
        };

        /// <summary>Live Link Face CSV order: Unreal's, with JawLeft/JawRight and MouthLeft/MouthRight swapped.</summary>
        public static readonly string[] LiveLink;

        public static readonly string[] LiveLinkHeadColumns =
        {
            "HeadYaw", "HeadPitch", "HeadRoll",
            "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
            "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
        };

        /// <summary>Timecode, BlendShapeCount, the 52 Live Link names, then the 9 head/eye rotations.</summary>
        public static readonly string[] LiveLinkHeader;
        /// <summary>The BlendShapeCount column's value as the app writes it (52 shapes + 9 rotations).</summary>
        public static readonly int LiveLinkBlendShapeCount;

        /// <summary>For each position in that order, the canonical index of its name.</summary>
        public static readonly int[] UnrealToCanonical;
        public static readonly int[] LiveLinkToCanonical;
        /// <summary>For each canonical index, its position in that order.</summary>
        public static readonly int[] CanonicalToUnreal;
        public static readonly int[] CanonicalToLiveLink;

        static readonly Dictionary<string, int> CanonicalIndex;

        static ExpressionNames()
        {
            CanonicalIndex = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
            for (int i = 0; i < Canonical.Length; i++) CanonicalIndex.Add(Canonical[i], i);

            LiveLink = (string[])Unreal.Clone();
            SwapNames(LiveLink, "JawLeft", "JawRight");
            SwapNames(LiveLink, "MouthLeft", "MouthRight");

            LiveLinkHeader = new string[2 + LiveLink.Length + LiveLinkHeadColumns.Length];
            LiveLinkHeader[0] = "Timecode";
            LiveLinkHeader[1] = "BlendShapeCount";
            LiveLink.CopyTo(LiveLinkHeader, 2);
            LiveLinkHeadColumns.CopyTo(LiveLinkHeader, 2 + LiveLink.Length);
            LiveLinkBlendShapeCount = LiveLink.Length + LiveLinkHeadColumns.Length;

            UnrealToCanonical = ToCanonical(Unreal);
            LiveLinkToCanonical = ToCanonical(LiveLink);
            CanonicalToUnreal = Invert(UnrealToCanonical);
            CanonicalToLiveLink = Invert(LiveLinkToCanonical);
        }

        static void SwapNames(string[] names, string a, string b)
        {
            int i = Array.IndexOf(names, a), j = Array.IndexOf(names, b);
            string t = names[i];
            names[i] = names[j];
            names[j] = t;
        }

        /// <summary>The canonical index of each name of a complete 52-name order (any case).</summary>
        public static int[] ToCanonical(IList<string> order)
        {
            if (order == null || order.Count != Count)
                throw new ExpressionException("an expression order must list all " + Count + " names");
            var map = new int[Count];
            var seen = new bool[Count];
            for (int k = 0; k < Count; k++)
            {
                int c = IndexOf(order[k]);
                if (seen[c]) throw new ExpressionException("the order names " + Canonical[c] + " twice");
                seen[c] = true;
                map[k] = c;
            }
            return map;
        }

        public static int[] Invert(int[] permutation)
        {
            var inverse = new int[permutation.Length];
            for (int k = 0; k < permutation.Length; k++) inverse[permutation[k]] = k;
            return inverse;
        }

        public static bool TryIndexOf(string name, out int index)
        {
            index = -1;
            return name != null && CanonicalIndex.TryGetValue(name, out index);
        }

        /// <summary>Canonical index of an ARKit name, matched case-insensitively (Unreal's PascalCase works too).</summary>
        public static int IndexOf(string name)
        {
            int index;
            if (!TryIndexOf(name, out index))
                throw new ExpressionException("unknown blendshape name '" + name + "'; expected one of the 52 ARKit names");
            return index;
        }

        /// <summary>Weights listed in another order (e.g. Live Link columns) to canonical order.</summary>
        public static float[] ToCanonicalOrder(IList<float> weights, int[] orderToCanonical)
        {
            if (weights.Count != orderToCanonical.Length)
                throw new ExpressionException("expected " + orderToCanonical.Length + " weights, got " + weights.Count);
            var result = new float[weights.Count];
            for (int k = 0; k < weights.Count; k++) result[orderToCanonical[k]] = weights[k];
            return result;
        }

        /// <summary>Canonical weights to another order, given that order's canonical-to-position map.</summary>
        public static float[] FromCanonicalOrder(IList<float> canonical, int[] canonicalToOrder)
        {
            if (canonical.Count != canonicalToOrder.Length)
                throw new ExpressionException("expected " + canonicalToOrder.Length + " weights, got " + canonical.Count);
            var result = new float[canonical.Count];
            for (int c = 0; c < canonical.Count; c++) result[canonicalToOrder[c]] = canonical[c];
            return result;
        }

        /// <summary>Checks a canonical 52-vector: finite, within [0, 1] up to WeightTolerance; returns a clipped copy.</summary>
        public static float[] ValidateWeights(IList<float> weights)
        {
            if (weights == null || weights.Count != Count)
                throw new ExpressionException("expression must have " + Count + " weights in canonical order, got " +
                                              (weights == null ? 0 : weights.Count));
            var result = new float[Count];
            for (int i = 0; i < Count; i++)
            {
                float w = weights[i];
                if (float.IsNaN(w) || float.IsInfinity(w))
                    throw new ExpressionException("weight for " + Canonical[i] + " is not a finite number (" +
                                                  w.ToString(CultureInfo.InvariantCulture) + ")");
                if (w < -WeightTolerance || w > 1 + WeightTolerance)
                    throw new ExpressionException("weight for " + Canonical[i] + " is " +
                                                  w.ToString("G6", CultureInfo.InvariantCulture) + ", outside [0, 1]");
                result[i] = Math.Min(1f, Math.Max(0f, w));
            }
            return result;
        }

        /// <summary>A name-to-weight map (any case) to a validated canonical vector; unnamed targets are 0.</summary>
        public static float[] WeightsFromMap(IEnumerable<KeyValuePair<string, float>> named)
        {
            var vector = new float[Count];
            var seen = new string[Count];
            foreach (var pair in named)
            {
                int i = IndexOf(pair.Key);
                if (seen[i] != null)
                    throw new ExpressionException("blendshape " + Canonical[i] + " given twice ('" + seen[i] +
                                                  "' and '" + pair.Key + "')");
                seen[i] = pair.Key;
                vector[i] = pair.Value;
            }
            return ValidateWeights(vector);
        }

        /// <summary>The Left/Right partner of a name (subject's own sides), or the canonical name itself when unpaired.</summary>
        public static string MirrorName(string name)
        {
            string canonical = Canonical[IndexOf(name)];
            if (canonical.EndsWith("Left", StringComparison.Ordinal))
                return canonical.Substring(0, canonical.Length - 4) + "Right";
            if (canonical.EndsWith("Right", StringComparison.Ordinal))
                return canonical.Substring(0, canonical.Length - 5) + "Left";
            return canonical;
        }
    }
}
