// Console runner for the engine-free core (Runtime/Core), compiled with Mono's mcs by
// tests/test_csharp.py. The Python side writes the inputs (through the exporter) and the expected
// values (through avatar/expressions.py); this program checks the C# side agrees exactly.
//
//   mono CoreTests.exe --expected EXPECTED.json [--table BLENDSHAPES.json] [--livelink LIVELINK.csv]
// The table and Live Link checks run only for the files given.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using AvatarForge.Core;

namespace AvatarForge.CoreTests
{
    static class CoreTestRunner
    {
        static int failures;

        static int Main(string[] args)
        {
            var options = new Dictionary<string, string>();
            for (int i = 0; i + 1 < args.Length; i += 2) options[args[i]] = args[i + 1];
            string expectedPath, tablePath, csvPath;
            if (args.Length % 2 != 0 || !options.TryGetValue("--expected", out expectedPath))
            {
                Console.Error.WriteLine("usage: CoreTests.exe --expected EXPECTED.json [--table BLENDSHAPES.json] [--livelink LIVELINK.csv]");
                return 64;
            }
            options.TryGetValue("--table", out tablePath);
            options.TryGetValue("--livelink", out csvPath);
            var expected = JsonReader.AsObject(JsonReader.Parse(File.ReadAllText(expectedPath)), "expected");

            Run("name_orders", () => NameOrders(expected));
            Run("index_maps", () => IndexMaps(expected));
            Run("mirror_names", () => MirrorNames(expected));
            Run("weights_from_map", () => WeightsFromMap(expected));
            Run("raw_frame_decoding", () => Frames(expected));
            Run("json_reader", JsonCases);
            if (tablePath != null)
            {
                Run("blendshape_table", () => Table(expected, tablePath));
                Run("blendshape_table_rejects_bad_input", () => TableRejects(tablePath));
            }
            if (csvPath != null)
            {
                Run("livelink_csv", () => LiveLink(expected, csvPath));
                Run("livelink_csv_rejects_bad_input", () => LiveLinkRejects(csvPath));
            }
            if (tablePath != null && csvPath != null)
                Run("table_livelink_columns", () => TableLiveLinkColumns(tablePath, csvPath));

            Console.WriteLine(failures == 0 ? "ALL PASSED" : failures + " FAILED");
            return failures == 0 ? 0 : 1;
        }

        static void Run(string name, Action body)
        {
            try
            {
                body();
                Console.WriteLine("PASS " + name);
            }
            catch (Exception e)
            {
                failures++;
                Console.WriteLine("FAIL " + name + ": " + e.GetType().Name + ": " + e.Message);
            }
        }

        static void Assert(bool condition, string message)
        {
            if (!condition) throw new InvalidOperationException(message);
        }

        static void Throws<T>(Action body, string what) where T : Exception
        {
            try { body(); }
            catch (T) { return; }
            throw new InvalidOperationException(what + " did not throw " + typeof(T).Name);
        }

        static string[] Strings(Dictionary<string, object> o, string key)
        {
            return JsonReader.GetStringArray(o, key, "expected");
        }

        static int[] Ints(object value)
        {
            var list = JsonReader.AsArray(value, "int list");
            var result = new int[list.Count];
            for (int i = 0; i < list.Count; i++) result[i] = (int)(double)list[i];
            return result;
        }

        static float[] Floats(object value)
        {
            var list = JsonReader.AsArray(value, "float list");
            var result = new float[list.Count];
            for (int i = 0; i < list.Count; i++) result[i] = (float)(double)list[i];
            return result;
        }

        static void SameStrings(string[] actual, string[] wanted, string what)
        {
            Assert(actual.Length == wanted.Length, what + ": " + actual.Length + " entries, expected " + wanted.Length);
            for (int i = 0; i < wanted.Length; i++)
                Assert(actual[i] == wanted[i], what + "[" + i + "] = " + actual[i] + ", expected " + wanted[i]);
        }

        static void SameInts(int[] actual, int[] wanted, string what)
        {
            Assert(actual.Length == wanted.Length, what + ": " + actual.Length + " entries, expected " + wanted.Length);
            for (int i = 0; i < wanted.Length; i++)
                Assert(actual[i] == wanted[i], what + "[" + i + "] = " + actual[i] + ", expected " + wanted[i]);
        }

        static void CloseFloats(float[] actual, float[] wanted, string what)
        {
            Assert(actual.Length == wanted.Length, what + ": " + actual.Length + " values, expected " + wanted.Length);
            for (int i = 0; i < wanted.Length; i++)
                Assert(Math.Abs(actual[i] - wanted[i]) <= 1e-6f, what + "[" + i + "] = " +
                       actual[i].ToString("R", CultureInfo.InvariantCulture) + ", expected " +
                       wanted[i].ToString("R", CultureInfo.InvariantCulture));
        }

        static void NameOrders(Dictionary<string, object> e)
        {
            SameStrings(ExpressionNames.Canonical, Strings(e, "canonical"), "canonical");
            SameStrings(ExpressionNames.Unreal, Strings(e, "unreal"), "unreal");
            SameStrings(ExpressionNames.LiveLink, Strings(e, "livelink_names"), "livelink");
            SameStrings(ExpressionNames.LiveLinkHeader, Strings(e, "livelink_header"), "livelink_header");
            Assert(ExpressionNames.LiveLinkBlendShapeCount == (int)JsonReader.GetNumber(e, "livelink_blendshape_count", "expected"),
                   "LiveLinkBlendShapeCount differs");
        }

        static void IndexMaps(Dictionary<string, object> e)
        {
            SameInts(ExpressionNames.UnrealToCanonical, Ints(e["unreal_to_canonical"]), "unreal_to_canonical");
            SameInts(ExpressionNames.LiveLinkToCanonical, Ints(e["livelink_to_canonical"]), "livelink_to_canonical");
            SameInts(ExpressionNames.CanonicalToUnreal, Ints(e["canonical_to_unreal"]), "canonical_to_unreal");
            SameInts(ExpressionNames.CanonicalToLiveLink, Ints(e["canonical_to_livelink"]), "canonical_to_livelink");
            // Reordering a vector agrees with avatar.expressions.reorder on the same input.
            var sample = JsonReader.AsObject(e["reorder"], "reorder");
            CloseFloats(ExpressionNames.ToCanonicalOrder(Floats(sample["livelink_weights"]), ExpressionNames.LiveLinkToCanonical),
                        Floats(sample["canonical_from_livelink"]), "canonical_from_livelink");
            CloseFloats(ExpressionNames.ToCanonicalOrder(Floats(sample["unreal_weights"]), ExpressionNames.UnrealToCanonical),
                        Floats(sample["canonical_from_unreal"]), "canonical_from_unreal");
            CloseFloats(ExpressionNames.FromCanonicalOrder(Floats(sample["canonical_from_unreal"]), ExpressionNames.CanonicalToUnreal),
                        Floats(sample["unreal_weights"]), "unreal_round_trip");
            // Case-insensitive lookup, as the server accepts Unreal's PascalCase.
            var lookups = JsonReader.AsObject(e["index_of"], "index_of");
            foreach (var pair in lookups)
                Assert(ExpressionNames.IndexOf(pair.Key) == (int)(double)pair.Value, "IndexOf(" + pair.Key + ")");
            Throws<ExpressionException>(() => ExpressionNames.IndexOf("jawOpenWide"), "IndexOf(unknown)");
        }

        static void MirrorNames(Dictionary<string, object> e)
        {
            foreach (var pair in JsonReader.AsObject(e["mirror"], "mirror"))
                Assert(ExpressionNames.MirrorName(pair.Key) == (string)pair.Value,
                       "MirrorName(" + pair.Key + ") = " + ExpressionNames.MirrorName(pair.Key) + ", expected " + pair.Value);
        }

        static void WeightsFromMap(Dictionary<string, object> e)
        {
            foreach (object item in JsonReader.AsArray(e["weights_from_map"], "weights_from_map"))
            {
                var c = JsonReader.AsObject(item, "case");
                var map = new List<KeyValuePair<string, float>>();
                foreach (var pair in JsonReader.AsObject(c["map"], "map"))
                    map.Add(new KeyValuePair<string, float>(pair.Key, (float)(double)pair.Value));
                if (c["expected"] == null)
                    Throws<ExpressionException>(() => ExpressionNames.WeightsFromMap(map), "WeightsFromMap(" + c["label"] + ")");
                else
                    CloseFloats(ExpressionNames.WeightsFromMap(map), Floats(c["expected"]), "WeightsFromMap(" + c["label"] + ")");
            }
        }

        static void Table(Dictionary<string, object> e, string path)
        {
            var table = BlendshapeTable.Load(path);
            var want = JsonReader.AsObject(e["table"], "table");
            Assert(table.AvatarId == (string)want["avatar_id"], "avatar_id " + table.AvatarId);
            Assert(table.HeadModelId == (string)want["head_model_id"], "head_model_id " + table.HeadModelId);
            SameStrings(table.UnrealOrder, ExpressionNames.Unreal, "table unreal order");
            SameStrings(table.LiveLinkOrder, ExpressionNames.LiveLink, "table livelink order");
            var targets = JsonReader.AsArray(want["targets"], "targets");
            Assert(targets.Count == 52, "expected 52 targets in the expectation file");
            foreach (object item in targets)
            {
                var t = JsonReader.AsObject(item, "target");
                int c = (int)(double)t["canonical_index"];
                var got = table.Targets[c];
                string where = "target " + got.ArkitName;
                Assert(got.ArkitName == (string)t["arkit_name"], where + " arkit_name");
                Assert(got.UnrealName == (string)t["unreal_name"], where + " unreal_name");
                Assert(got.UnrealIndex == (int)(double)t["unreal_index"], where + " unreal_index");
                Assert(got.LiveLinkColumn == (int)(double)t["livelink_column"], where + " livelink_column");
                Assert(got.GlbMorphIndex == (int)(double)t["glb_morph_index"], where + " glb_morph_index");
                Assert(got.FaceVerseExp52Index == (int)(double)t["faceverse_exp52_index"], where + " faceverse index");
                Assert(got.Region == (string)t["region"], where + " region");
                Assert(Math.Abs(got.MaxDisplacementMetres - (double)t["max_displacement_m"]) < 1e-12, where + " displacement");
                // The table's own indices agree with the derived maps.
                Assert(ExpressionNames.CanonicalToUnreal[c] == got.UnrealIndex, where + " unreal index vs map");
                Assert(ExpressionNames.CanonicalToLiveLink[c] == got.LiveLinkColumn - 2, where + " livelink column vs map");
            }
            var weights = new float[52];
            weights[ExpressionNames.IndexOf("jawOpen")] = 0.5f;
            float[] morph = table.ToGlbMorphWeights(weights, 100f);
            Assert(Math.Abs(morph[table.Find("JawOpen").GlbMorphIndex] - 50f) < 1e-4f, "ToGlbMorphWeights jawOpen");
            Assert(table.Find("jawopen") == table.Targets[ExpressionNames.IndexOf("jawOpen")], "Find is case-insensitive");
        }

        static void TableRejects(string path)
        {
            string good = File.ReadAllText(path);
            Throws<BlendshapeTableException>(() => BlendshapeTable.Parse(good.Substring(0, good.Length / 2)), "truncated table");
            Throws<BlendshapeTableException>(() => BlendshapeTable.Parse(good.Replace("\"schema_version\": 1", "\"schema_version\": 7")), "schema 7");
            Throws<BlendshapeTableException>(() => BlendshapeTable.Parse(good.Replace("\"arkit_name\": \"jawOpen\"", "\"arkit_name\": \"jawClosed\"")), "renamed target");
            Throws<BlendshapeTableException>(() => BlendshapeTable.Parse("[1, 2]"), "array document");
        }

        static void LiveLink(Dictionary<string, object> e, string path)
        {
            var want = JsonReader.AsObject(e["livelink"], "livelink");
            var recording = LiveLinkRecording.Load(path, JsonReader.GetNumber(want, "frame_rate", "livelink"));
            var frames = JsonReader.AsArray(want["frames"], "frames");
            Assert(recording.Frames.Count == frames.Count, "frame count " + recording.Frames.Count + ", expected " + frames.Count);
            for (int i = 0; i < frames.Count; i++)
            {
                var f = JsonReader.AsObject(frames[i], "frame");
                var got = recording.Frames[i];
                Assert(got.Timecode == (string)f["timecode"], "frame " + i + " timecode " + got.Timecode);
                Assert(Math.Abs(got.Time - (double)f["time"]) < 1e-5, "frame " + i + " time " + got.Time);
                CloseFloats(got.Weights, Floats(f["weights"]), "frame " + i + " weights");
                CloseFloats(got.HeadRotation, Floats(f["head_rotation"]), "frame " + i + " head");
                CloseFloats(got.EyeRotation, Floats(f["eye_columns"]), "frame " + i + " eyes");
            }
            Assert(Math.Abs(LiveLinkRecording.ParseTimecode("00:00:01:15.500", 30) - (1 + 15.5 / 30)) < 1e-12, "ParseTimecode");
        }

        // The table's Live Link columns index the same cells the name-matching CSV reader used.
        static void TableLiveLinkColumns(string tablePath, string csvPath)
        {
            var table = BlendshapeTable.Load(tablePath);
            var recording = LiveLinkRecording.Load(csvPath);
            string[] lines = File.ReadAllLines(csvPath);
            for (int row = 1; row < lines.Length; row++)
            {
                var cells = LiveLinkRecording.SplitCsvLine(lines[row], "csv", row + 1);
                var numbers = new float[cells.Count];
                for (int k = 2; k < cells.Count; k++) numbers[k] = float.Parse(cells[k], CultureInfo.InvariantCulture);
                CloseFloats(table.CanonicalFromLiveLinkRow(numbers), recording.Frames[row - 1].Weights, "row " + row);
            }
        }

        static void LiveLinkRejects(string path)
        {
            string good = File.ReadAllText(path);
            string[] lines = good.Split('\n');
            Throws<LiveLinkCsvException>(() => LiveLinkRecording.Parse(lines[0]), "header only");
            Throws<LiveLinkCsvException>(() => LiveLinkRecording.Parse(good.Replace("JawOpen", "JawOpenWide")), "unknown column");
            Throws<LiveLinkCsvException>(() => LiveLinkRecording.Parse(lines[0] + "\n" + lines[1] + ",0.5\n"), "extra cell");
            string[] row = lines[1].Split(',');
            row[5] = "1.5";
            Throws<LiveLinkCsvException>(() => LiveLinkRecording.Parse(lines[0] + "\n" + string.Join(",", row)), "weight above 1");
            row[5] = "nan";
            Throws<LiveLinkCsvException>(() => LiveLinkRecording.Parse(lines[0] + "\n" + string.Join(",", row)), "NaN weight");
            Throws<LiveLinkCsvException>(() => LiveLinkRecording.Parse(lines[0] + "\n" + lines[1] + "\n" + lines[1]), "repeated timecode");
        }

        static byte[] Hex(string hex)
        {
            var bytes = new byte[hex.Length / 2];
            for (int i = 0; i < bytes.Length; i++) bytes[i] = byte.Parse(hex.Substring(2 * i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return bytes;
        }

        static void Frames(Dictionary<string, object> e)
        {
            var f = JsonReader.AsObject(e["frame"], "frame");
            int w = (int)(double)f["width"], h = (int)(double)f["height"];
            byte[] rgba = Hex((string)f["rgba_top_down"]);
            byte[] flipped = RawFrame.Rgba8TopDownToBottomUp(rgba, w, h);
            byte[] want = Hex((string)f["rgba_bottom_up"]);
            Assert(flipped.Length == want.Length, "flipped length");
            for (int i = 0; i < want.Length; i++) Assert(flipped[i] == want[i], "flipped byte " + i);
            byte[] reused = RawFrame.Rgba8TopDownToBottomUp(rgba, w, h, new byte[rgba.Length]);
            for (int i = 0; i < want.Length; i++) Assert(reused[i] == want[i], "reused buffer byte " + i);
            CloseFloats(RawFrame.DepthBottomUp(Hex((string)f["depth_top_down"]), w, h), Floats(f["depth_bottom_up"]), "depth");
            byte[] alpha = RawFrame.AlphaBottomUp(Hex((string)f["alpha_top_down"]), w, h);
            byte[] wantAlpha = Hex((string)f["alpha_bottom_up"]);
            for (int i = 0; i < wantAlpha.Length; i++) Assert(alpha[i] == wantAlpha[i], "alpha byte " + i);
            Throws<ArgumentException>(() => RawFrame.Rgba8TopDownToBottomUp(new byte[w * h * 4 - 1], w, h), "short frame");
            Throws<ArgumentException>(() => RawFrame.Rgba8TopDownToBottomUp(rgba, 0, h), "zero width");
        }

        static void JsonCases()
        {
            var o = JsonReader.AsObject(JsonReader.Parse("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\n\"], \"b\": {}}"), "doc");
            var a = JsonReader.AsArray(o["a"], "a");
            Assert((double)a[0] == 1 && (double)a[1] == -2500 && (bool)a[2] && a[3] == null && (string)a[4] == "x\u00e9\n", "values");
            Throws<JsonFormatException>(() => JsonReader.Parse("{\"a\": 1,}"), "trailing comma");
            Throws<JsonFormatException>(() => JsonReader.Parse("{\"a\": 1, \"a\": 2}"), "repeated member");
            Throws<JsonFormatException>(() => JsonReader.Parse("[01]"), "leading zero");
            Throws<JsonFormatException>(() => JsonReader.Parse("\"unterminated"), "unterminated string");
            Throws<JsonFormatException>(() => JsonReader.Parse(new string('[', 100) + new string(']', 100)), "deep nesting");
        }
    }
}
