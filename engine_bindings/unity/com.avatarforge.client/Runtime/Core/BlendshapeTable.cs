using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace AvatarForge.Core
{
    /// <summary>A blendshapes.json that cannot be used; the message names the problem.</summary>
    public sealed class BlendshapeTableException : FormatException
    {
        public BlendshapeTableException(string message) : base(message) { }
    }

    /// <summary>One ARKit target of an exported avatar, as listed in blendshapes.json.</summary>
    public sealed class BlendshapeTarget
    {
        public int CanonicalIndex;
        public string ArkitName;
        public string UnrealName;
        public int UnrealIndex;
        /// <summary>0-based column of this target in a Live Link Face CSV row (0 = Timecode, 1 = BlendShapeCount).</summary>
        public int LiveLinkColumn;
        public int FaceVerseExp52Index;
        /// <summary>Index of the morph target in the exported GLB's head mesh.</summary>
        public int GlbMorphIndex;
        /// <summary>"&lt;area&gt;.&lt;side&gt;", e.g. "mouth.left".</summary>
        public string Region;
        public double MaxDisplacementMetres;
    }

    /// <summary>The exporter's blendshapes.json (schema version 1): names in every order and per-target indices.</summary>
    public sealed class BlendshapeTable
    {
        public const int SupportedSchemaVersion = 1;

        public int SchemaVersion { get; private set; }
        public string AvatarId { get; private set; }
        public string HeadModelId { get; private set; }
        public string Units { get; private set; }
        public string[] CanonicalOrder { get; private set; }
        public string[] UnrealOrder { get; private set; }
        public string[] LiveLinkOrder { get; private set; }
        /// <summary>The 52 targets, indexed by canonical index.</summary>
        public BlendshapeTarget[] Targets { get; private set; }
        /// <summary>Number of morph targets on the GLB head mesh the table describes.</summary>
        public int GlbMorphCount { get; private set; }

        public static BlendshapeTable Load(string path)
        {
            string text;
            try { text = File.ReadAllText(path, Encoding.UTF8); }
            catch (IOException e) { throw new BlendshapeTableException("cannot read " + path + ": " + e.Message); }
            catch (UnauthorizedAccessException e) { throw new BlendshapeTableException("cannot read " + path + ": " + e.Message); }
            return Parse(text);
        }

        public static BlendshapeTable Parse(string json)
        {
            try { return FromJson(JsonReader.Parse(json)); }
            catch (JsonFormatException e) { throw new BlendshapeTableException("blendshapes.json: " + e.Message); }
            catch (ExpressionException e) { throw new BlendshapeTableException("blendshapes.json: " + e.Message); }
        }

        static BlendshapeTable FromJson(object root)
        {
            var doc = JsonReader.AsObject(root, "the document");
            var table = new BlendshapeTable();
            table.SchemaVersion = JsonReader.GetInt(doc, "schema_version", "root");
            if (table.SchemaVersion != SupportedSchemaVersion)
                throw new BlendshapeTableException("blendshapes.json has schema_version " + table.SchemaVersion +
                                                   "; this package reads version " + SupportedSchemaVersion);
            table.AvatarId = JsonReader.GetString(doc, "avatar_id", "root");
            table.HeadModelId = JsonReader.GetString(doc, "head_model_id", "root");
            table.Units = JsonReader.GetString(doc, "units", "root");
            if (table.Units != "metres")
                throw new BlendshapeTableException("blendshapes.json units are '" + table.Units + "', expected 'metres'");

            var orders = JsonReader.AsObject(JsonReader.Member(doc, "orders", "root"), "orders");
            table.CanonicalOrder = JsonReader.GetStringArray(orders, "canonical", "orders");
            table.UnrealOrder = JsonReader.GetStringArray(orders, "unreal", "orders");
            table.LiveLinkOrder = JsonReader.GetStringArray(orders, "livelink", "orders");
            for (int i = 0; i < ExpressionNames.Count; i++)
            {
                if (table.CanonicalOrder.Length != ExpressionNames.Count || table.CanonicalOrder[i] != ExpressionNames.Canonical[i])
                    throw new BlendshapeTableException("blendshapes.json orders.canonical is not the 52 ARKit names in canonical order");
            }
            // Throws when an order is not a permutation of the 52 names.
            ExpressionNames.ToCanonical(table.UnrealOrder);
            int[] liveLinkToCanonical = ExpressionNames.ToCanonical(table.LiveLinkOrder);

            var targetList = JsonReader.AsArray(JsonReader.Member(doc, "targets", "root"), "targets");
            if (targetList.Count != ExpressionNames.Count)
                throw new BlendshapeTableException("blendshapes.json lists " + targetList.Count + " targets, expected " +
                                                   ExpressionNames.Count);
            table.Targets = new BlendshapeTarget[ExpressionNames.Count];
            var morphUsed = new HashSet<int>();
            for (int i = 0; i < targetList.Count; i++)
            {
                string where = "targets[" + i + "]";
                var t = ParseTarget(JsonReader.AsObject(targetList[i], where), where);
                if (t.CanonicalIndex < 0 || t.CanonicalIndex >= ExpressionNames.Count || table.Targets[t.CanonicalIndex] != null)
                    throw new BlendshapeTableException(where + " has a missing or repeated canonical_index " + t.CanonicalIndex);
                if (t.ArkitName != ExpressionNames.Canonical[t.CanonicalIndex])
                    throw new BlendshapeTableException(where + " names " + t.ArkitName + " at canonical index " + t.CanonicalIndex);
                if (t.UnrealIndex < 0 || t.UnrealIndex >= ExpressionNames.Count || table.UnrealOrder[t.UnrealIndex] != t.UnrealName
                    || ExpressionNames.IndexOf(t.UnrealName) != t.CanonicalIndex)
                    throw new BlendshapeTableException(where + " (" + t.ArkitName + ") has an inconsistent unreal_name/unreal_index");
                int liveLinkPosition = t.LiveLinkColumn - 2;
                if (liveLinkPosition < 0 || liveLinkPosition >= ExpressionNames.Count || liveLinkToCanonical[liveLinkPosition] != t.CanonicalIndex)
                    throw new BlendshapeTableException(where + " (" + t.ArkitName + ") has livelink_column " + t.LiveLinkColumn +
                                                       ", which is not its column in orders.livelink");
                if (t.GlbMorphIndex < 0 || !morphUsed.Add(t.GlbMorphIndex))
                    throw new BlendshapeTableException(where + " (" + t.ArkitName + ") has a negative or repeated glb_morph_index");
                table.Targets[t.CanonicalIndex] = t;
                table.GlbMorphCount = Math.Max(table.GlbMorphCount, t.GlbMorphIndex + 1);
            }
            return table;
        }

        static BlendshapeTarget ParseTarget(Dictionary<string, object> o, string where)
        {
            return new BlendshapeTarget
            {
                CanonicalIndex = JsonReader.GetInt(o, "canonical_index", where),
                ArkitName = JsonReader.GetString(o, "arkit_name", where),
                UnrealName = JsonReader.GetString(o, "unreal_name", where),
                UnrealIndex = JsonReader.GetInt(o, "unreal_index", where),
                LiveLinkColumn = JsonReader.GetInt(o, "livelink_column", where),
                FaceVerseExp52Index = JsonReader.GetInt(o, "faceverse_exp52_index", where),
                GlbMorphIndex = JsonReader.GetInt(o, "glb_morph_index", where),
                Region = JsonReader.GetString(o, "region", where),
                MaxDisplacementMetres = JsonReader.GetNumber(o, "max_displacement_m", where),
            };
        }

        public BlendshapeTarget Find(string name)
        {
            return Targets[ExpressionNames.IndexOf(name)];
        }

        /// <summary>
        /// Canonical weights (0..1) to the GLB head mesh's morph weights, scaled to the engine's range
        /// (Unity's SkinnedMeshRenderer uses 0..100; glTF uses 0..1).
        /// </summary>
        public float[] ToGlbMorphWeights(IList<float> canonical, float scale)
        {
            float[] valid = ExpressionNames.ValidateWeights(canonical);
            var result = new float[GlbMorphCount];
            for (int c = 0; c < ExpressionNames.Count; c++) result[Targets[c].GlbMorphIndex] = valid[c] * scale;
            return result;
        }

        /// <summary>The canonical weights of one Live Link Face CSV row given as numbers (cells 0 and 1, Timecode and BlendShapeCount, are not read).</summary>
        public float[] CanonicalFromLiveLinkRow(IList<float> rowCells)
        {
            var result = new float[ExpressionNames.Count];
            for (int c = 0; c < ExpressionNames.Count; c++)
            {
                int column = Targets[c].LiveLinkColumn;
                if (column >= rowCells.Count)
                    throw new ExpressionException("the Live Link row has " + rowCells.Count + " cells; " +
                                                  Targets[c].ArkitName + " is column " + column);
                result[c] = rowCells[column];
            }
            return ExpressionNames.ValidateWeights(result);
        }
    }
}
