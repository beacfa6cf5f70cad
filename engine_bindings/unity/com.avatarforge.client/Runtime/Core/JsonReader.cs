using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace AvatarForge.Core
{
    /// <summary>Raised for text that is not valid JSON or lacks an expected member.</summary>
    public sealed class JsonFormatException : FormatException
    {
        public JsonFormatException(string message) : base(message) { }
    }

    /// <summary>
    /// A compact RFC 8259 reader: objects become Dictionary&lt;string, object&gt;, arrays List&lt;object&gt;,
    /// numbers double, plus string, bool and null. Kept here because Unity's JsonUtility cannot read
    /// dictionaries or top-level arrays and Mono's profile lacks System.Text.Json.
    /// </summary>
    public static class JsonReader
    {
        const int MaxDepth = 64;

        public static object Parse(string text)
        {
            if (text == null) throw new ArgumentNullException("text");
            var parser = new Parser(text);
            parser.SkipWhitespace();
            object value = parser.ReadValue(0);
            parser.SkipWhitespace();
            if (!parser.AtEnd) throw parser.Error("unexpected text after the JSON value");
            return value;
        }

        public static Dictionary<string, object> AsObject(object value, string what)
        {
            var obj = value as Dictionary<string, object>;
            if (obj == null) throw new JsonFormatException(what + " must be a JSON object");
            return obj;
        }

        public static List<object> AsArray(object value, string what)
        {
            var list = value as List<object>;
            if (list == null) throw new JsonFormatException(what + " must be a JSON array");
            return list;
        }

        public static object Member(Dictionary<string, object> obj, string key, string where)
        {
            object value;
            if (!obj.TryGetValue(key, out value)) throw new JsonFormatException(where + " lacks \"" + key + "\"");
            return value;
        }

        public static string GetString(Dictionary<string, object> obj, string key, string where)
        {
            var s = Member(obj, key, where) as string;
            if (s == null) throw new JsonFormatException(where + "." + key + " must be a string");
            return s;
        }

        public static double GetNumber(Dictionary<string, object> obj, string key, string where)
        {
            object value = Member(obj, key, where);
            if (!(value is double)) throw new JsonFormatException(where + "." + key + " must be a number");
            return (double)value;
        }

        public static int GetInt(Dictionary<string, object> obj, string key, string where)
        {
            double d = GetNumber(obj, key, where);
            if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue)
                throw new JsonFormatException(where + "." + key + " must be an integer, got " +
                                              d.ToString(CultureInfo.InvariantCulture));
            return (int)d;
        }

        public static string[] GetStringArray(Dictionary<string, object> obj, string key, string where)
        {
            List<object> list = AsArray(Member(obj, key, where), where + "." + key);
            var result = new string[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                result[i] = list[i] as string;
                if (result[i] == null)
                    throw new JsonFormatException(where + "." + key + "[" + i + "] must be a string");
            }
            return result;
        }

        sealed class Parser
        {
            readonly string text;
            int pos;

            public Parser(string text) { this.text = text; }

            public bool AtEnd { get { return pos >= text.Length; } }

            public JsonFormatException Error(string problem)
            {
                int line = 1, column = 1;
                for (int i = 0; i < pos && i < text.Length; i++)
                {
                    if (text[i] == '\n') { line++; column = 1; }
                    else column++;
                }
                return new JsonFormatException("JSON " + problem + " at line " + line + ", column " + column);
            }

            public void SkipWhitespace()
            {
                while (pos < text.Length)
                {
                    char c = text[pos];
                    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
                    pos++;
                }
            }

            public object ReadValue(int depth)
            {
                if (depth > MaxDepth) throw Error("nests deeper than " + MaxDepth + " levels");
                if (AtEnd) throw Error("ends where a value was expected");
                char c = text[pos];
                switch (c)
                {
                    case '{': return ReadObject(depth);
                    case '[': return ReadArray(depth);
                    case '"': return ReadString();
                    case 't': ExpectWord("true"); return true;
                    case 'f': ExpectWord("false"); return false;
                    case 'n': ExpectWord("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                        throw Error("has an unexpected character '" + c + "'");
                }
            }

            void ExpectWord(string word)
            {
                if (string.CompareOrdinal(text, pos, word, 0, word.Length) != 0) throw Error("has an invalid literal");
                pos += word.Length;
            }

            Dictionary<string, object> ReadObject(int depth)
            {
                var result = new Dictionary<string, object>(StringComparer.Ordinal);
                pos++;
                SkipWhitespace();
                if (!AtEnd && text[pos] == '}') { pos++; return result; }
                while (true)
                {
                    SkipWhitespace();
                    if (AtEnd || text[pos] != '"') throw Error("expects a member name");
                    string key = ReadString();
                    SkipWhitespace();
                    if (AtEnd || text[pos] != ':') throw Error("expects ':' after a member name");
                    pos++;
                    SkipWhitespace();
                    if (result.ContainsKey(key)) throw Error("repeats the member \"" + key + "\"");
                    result[key] = ReadValue(depth + 1);
                    SkipWhitespace();
                    if (AtEnd) throw Error("ends inside an object");
                    if (text[pos] == ',') { pos++; continue; }
                    if (text[pos] == '}') { pos++; return result; }
                    throw Error("expects ',' or '}' in an object");
                }
            }

            List<object> ReadArray(int depth)
            {
                var result = new List<object>();
                pos++;
                SkipWhitespace();
                if (!AtEnd && text[pos] == ']') { pos++; return result; }
                while (true)
                {
                    SkipWhitespace();
                    result.Add(ReadValue(depth + 1));
                    SkipWhitespace();
                    if (AtEnd) throw Error("ends inside an array");
                    if (text[pos] == ',') { pos++; continue; }
                    if (text[pos] == ']') { pos++; return result; }
                    throw Error("expects ',' or ']' in an array");
                }
            }

            string ReadString()
            {
                pos++;  // opening quote
                var sb = new StringBuilder();
                while (true)
                {
                    if (AtEnd) throw Error("ends inside a string");
                    char c = text[pos++];
                    if (c == '"') return sb.ToString();
                    if (c < 0x20) throw Error("has a control character inside a string");
                    if (c != '\\') { sb.Append(c); continue; }
                    if (AtEnd) throw Error("ends inside an escape");
                    char e = text[pos++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (pos + 4 > text.Length) throw Error("has a short \\u escape");
                            int code;
                            if (!int.TryParse(text.Substring(pos, 4), NumberStyles.AllowHexSpecifier,
                                              CultureInfo.InvariantCulture, out code))
                                throw Error("has an invalid \\u escape");
                            sb.Append((char)code);
                            pos += 4;
                            break;
                        default: throw Error("has an invalid escape '\\" + e + "'");
                    }
                }
            }

            double ReadNumber()
            {
                int start = pos;
                if (text[pos] == '-') pos++;
                if (AtEnd) throw Error("has a truncated number");
                if (text[pos] == '0') pos++;
                else if (text[pos] >= '1' && text[pos] <= '9') SkipDigits();
                else throw Error("has an invalid number");
                if (!AtEnd && text[pos] == '.')
                {
                    pos++;
                    if (AtEnd || !char.IsDigit(text[pos])) throw Error("has a number without fraction digits");
                    SkipDigits();
                }
                if (!AtEnd && (text[pos] == 'e' || text[pos] == 'E'))
                {
                    pos++;
                    if (!AtEnd && (text[pos] == '+' || text[pos] == '-')) pos++;
                    if (AtEnd || !char.IsDigit(text[pos])) throw Error("has a number without exponent digits");
                    SkipDigits();
                }
                return double.Parse(text.Substring(start, pos - start), NumberStyles.Float, CultureInfo.InvariantCulture);
            }

            void SkipDigits()
            {
                while (pos < text.Length && text[pos] >= '0' && text[pos] <= '9') pos++;
            }
        }
    }
}
