using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.RegularExpressions;

namespace AvatarForge.Core
{
    /// <summary>A Live Link Face CSV that cannot be used; the message names the line and problem.</summary>
    public sealed class LiveLinkCsvException : FormatException
    {
        public LiveLinkCsvException(string message) : base(message) { }
    }

    public sealed class LiveLinkFrame
    {
        public string Timecode;
        /// <summary>Seconds since the recording's first frame.</summary>
        public double Time;
        /// <summary>52 weights in canonical order, validated and clipped into [0, 1].</summary>
        public float[] Weights;
        /// <summary>Yaw, pitch, roll in radians; null when the file has no head columns.</summary>
        public float[] HeadRotation;
        /// <summary>LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll; null when absent.</summary>
        public float[] EyeRotation;
    }

    /// <summary>
    /// Epic's Live Link Face recording format. Columns are matched by name (any case), as the server's
    /// reader does, so files with the head columns missing still load.
    /// </summary>
    public sealed class LiveLinkRecording
    {
        public const double DefaultFrameRate = 30.0;
        static readonly Regex TimecodePattern = new Regex(@"^(\d+):(\d{2}):(\d{2}):(\d+)(?:\.(\d+))?$", RegexOptions.CultureInvariant);

        public double FrameRate { get; private set; }
        public List<LiveLinkFrame> Frames { get; private set; }

        public static LiveLinkRecording Load(string path, double frameRate = DefaultFrameRate)
        {
            string text;
            try { text = File.ReadAllText(path, Encoding.UTF8); }
            catch (IOException e) { throw new LiveLinkCsvException("cannot read " + path + ": " + e.Message); }
            catch (UnauthorizedAccessException e) { throw new LiveLinkCsvException("cannot read " + path + ": " + e.Message); }
            return Parse(text, frameRate, Path.GetFileName(path));
        }

        /// <summary>Seconds of an "HH:MM:SS:FF.fff" timecode at the given frame rate.</summary>
        public static double ParseTimecode(string timecode, double frameRate)
        {
            Match m = TimecodePattern.Match(timecode.Trim());
            if (!m.Success) throw new LiveLinkCsvException("timecode '" + timecode + "' is not HH:MM:SS:FF.fff");
            double frames = int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
            if (m.Groups[5].Success)
                frames += double.Parse("0." + m.Groups[5].Value, CultureInfo.InvariantCulture);
            return int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) * 3600.0 +
                   int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) * 60.0 +
                   int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture) + frames / frameRate;
        }

        public static LiveLinkRecording Parse(string text, double frameRate = DefaultFrameRate, string source = "livelink.csv")
        {
            if (!(frameRate > 0) || double.IsInfinity(frameRate))
                throw new LiveLinkCsvException(source + ": frame rate must be a positive number");
            if (text.Length > 0 && text[0] == '\uFEFF') text = text.Substring(1);
            var rows = new List<KeyValuePair<int, List<string>>>();
            var lines = text.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                string line = lines[i].TrimEnd('\r');
                if (line.Trim().Length == 0) continue;
                rows.Add(new KeyValuePair<int, List<string>>(i + 1, SplitCsvLine(line, source, i + 1)));
            }
            if (rows.Count < 2) throw new LiveLinkCsvException(source + ": needs a header row and at least one frame");

            List<string> header = rows[0].Value;
            if (!string.Equals(header[0].Trim(), "Timecode", StringComparison.OrdinalIgnoreCase))
                throw new LiveLinkCsvException(source + ": first column must be Timecode (a Live Link Face CSV)");
            var shapeColumn = new int[ExpressionNames.Count];
            var poseColumn = new int[ExpressionNames.LiveLinkHeadColumns.Length];
            for (int k = 0; k < shapeColumn.Length; k++) shapeColumn[k] = -1;
            for (int k = 0; k < poseColumn.Length; k++) poseColumn[k] = -1;
            for (int col = 1; col < header.Count; col++)
            {
                string name = header[col].Trim();
                if (string.Equals(name, "BlendShapeCount", StringComparison.OrdinalIgnoreCase)) continue;
                int pose = IndexOfIgnoreCase(ExpressionNames.LiveLinkHeadColumns, name);
                if (pose >= 0) { poseColumn[pose] = col; continue; }
                int canonical;
                if (!ExpressionNames.TryIndexOf(name, out canonical))
                    throw new LiveLinkCsvException(source + ": unknown column '" + name + "'");
                if (shapeColumn[canonical] >= 0)
                    throw new LiveLinkCsvException(source + ": column '" + name + "' appears twice");
                shapeColumn[canonical] = col;
            }
            int missing = 0;
            foreach (int c in shapeColumn) if (c < 0) missing++;
            if (missing > 0) throw new LiveLinkCsvException(source + ": " + missing + " blendshape columns are missing");
            bool hasHead = poseColumn[0] >= 0 && poseColumn[1] >= 0 && poseColumn[2] >= 0;
            bool hasEyes = true;
            for (int k = 3; k < poseColumn.Length; k++) hasEyes &= poseColumn[k] >= 0;

            var recording = new LiveLinkRecording { FrameRate = frameRate, Frames = new List<LiveLinkFrame>() };
            double first = 0;
            for (int r = 1; r < rows.Count; r++)
            {
                int lineNumber = rows[r].Key;
                List<string> cells = rows[r].Value;
                string where = source + " line " + lineNumber;
                if (cells.Count != header.Count)
                    throw new LiveLinkCsvException(where + ": " + cells.Count + " cells, header has " + header.Count);
                var frame = new LiveLinkFrame { Timecode = cells[0].Trim() };
                double t = ParseTimecode(frame.Timecode, frameRate);
                if (r == 1) first = t;
                frame.Time = t - first;
                if (r > 1 && frame.Time <= recording.Frames[r - 2].Time)
                    throw new LiveLinkCsvException(where + ": timecodes are not strictly increasing at " +
                                                   frameRate.ToString(CultureInfo.InvariantCulture) + " fps (is the frame rate right?)");
                var weights = new float[ExpressionNames.Count];
                for (int c = 0; c < weights.Length; c++) weights[c] = Number(cells[shapeColumn[c]], where);
                try { frame.Weights = ExpressionNames.ValidateWeights(weights); }
                catch (ExpressionException e) { throw new LiveLinkCsvException(where + ": " + e.Message); }
                if (hasHead)
                    frame.HeadRotation = new[] { Number(cells[poseColumn[0]], where), Number(cells[poseColumn[1]], where), Number(cells[poseColumn[2]], where) };
                if (hasEyes)
                {
                    frame.EyeRotation = new float[6];
                    for (int k = 0; k < 6; k++) frame.EyeRotation[k] = Number(cells[poseColumn[3 + k]], where);
                }
                recording.Frames.Add(frame);
            }
            return recording;
        }

        static int IndexOfIgnoreCase(string[] names, string name)
        {
            for (int i = 0; i < names.Length; i++)
                if (string.Equals(names[i], name, StringComparison.OrdinalIgnoreCase)) return i;
            return -1;
        }

        static float Number(string cell, string where)
        {
            float value;
            if (!float.TryParse(cell.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out value) ||
                float.IsNaN(value) || float.IsInfinity(value))
                throw new LiveLinkCsvException(where + ": '" + cell + "' is not a finite number");
            return value;
        }

        /// <summary>RFC 4180 cells of one line (quoted cells may hold commas and doubled quotes).</summary>
        public static List<string> SplitCsvLine(string line, string source, int lineNumber)
        {
            var cells = new List<string>();
            var cell = new StringBuilder();
            bool quoted = false;
            for (int i = 0; i < line.Length; i++)
            {
                char c = line[i];
                if (quoted)
                {
                    if (c != '"') cell.Append(c);
                    else if (i + 1 < line.Length && line[i + 1] == '"') { cell.Append('"'); i++; }
                    else quoted = false;
                }
                else if (c == '"') quoted = true;
                else if (c == ',') { cells.Add(cell.ToString()); cell.Length = 0; }
                else cell.Append(c);
            }
            if (quoted) throw new LiveLinkCsvException(source + " line " + lineNumber + ": unterminated quoted cell");
            cells.Add(cell.ToString());
            return cells;
        }
    }
}
