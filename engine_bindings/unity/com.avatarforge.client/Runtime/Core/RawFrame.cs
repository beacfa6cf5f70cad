using System;

namespace AvatarForge.Core
{
    /// <summary>
    /// Decoding of the server's RAW_RGBA8 frames (width*height*4 bytes, row-major, top row first,
    /// straight alpha) and depth/alpha side channels into the bottom-row-first layout that
    /// Texture2D.LoadRawTextureData and most GPU uploads expect.
    /// </summary>
    public static class RawFrame
    {
        public static void CheckSize(int width, int height, long length, int bytesPerPixel, string what)
        {
            if (width <= 0 || height <= 0)
                throw new ArgumentException(what + " has invalid size " + width + "x" + height);
            long expected = (long)width * height * bytesPerPixel;
            if (length != expected)
                throw new ArgumentException(what + " holds " + length + " bytes; " + width + "x" + height + " needs " + expected);
        }

        /// <summary>Reverses the row order of a tightly packed image; reuses <paramref name="destination"/> when it fits.</summary>
        public static byte[] FlipRows(byte[] source, int rowBytes, int rows, byte[] destination)
        {
            if (source == null) throw new ArgumentNullException("source");
            if (destination == null || destination.Length != source.Length) destination = new byte[source.Length];
            if (ReferenceEquals(source, destination)) throw new ArgumentException("FlipRows cannot work in place");
            for (int y = 0; y < rows; y++)
                Buffer.BlockCopy(source, y * rowBytes, destination, (rows - 1 - y) * rowBytes, rowBytes);
            return destination;
        }

        /// <summary>RAW_RGBA8 (top row first) to bottom-row-first RGBA8 for Texture2D.LoadRawTextureData.</summary>
        public static byte[] Rgba8TopDownToBottomUp(byte[] data, int width, int height, byte[] destination = null)
        {
            CheckSize(width, height, data == null ? 0 : data.LongLength, 4, "RAW_RGBA8 frame");
            return FlipRows(data, width * 4, height, destination);
        }

        /// <summary>The frame's depth (float32 little-endian, top row first) as floats, bottom row first.</summary>
        public static float[] DepthBottomUp(byte[] depth, int width, int height)
        {
            CheckSize(width, height, depth == null ? 0 : depth.LongLength, 4, "depth");
            var result = new float[width * height];
            bool swap = !BitConverter.IsLittleEndian;
            var scratch = new byte[4];
            for (int y = 0; y < height; y++)
            {
                int srcRow = y * width * 4, dstRow = (height - 1 - y) * width;
                for (int x = 0; x < width; x++)
                {
                    int o = srcRow + x * 4;
                    if (swap)
                    {
                        scratch[0] = depth[o + 3]; scratch[1] = depth[o + 2]; scratch[2] = depth[o + 1]; scratch[3] = depth[o];
                        result[dstRow + x] = BitConverter.ToSingle(scratch, 0);
                    }
                    else
                    {
                        result[dstRow + x] = BitConverter.ToSingle(depth, o);
                    }
                }
            }
            return result;
        }

        /// <summary>The frame's separate alpha plane (uint8, top row first), bottom row first.</summary>
        public static byte[] AlphaBottomUp(byte[] alpha, int width, int height, byte[] destination = null)
        {
            CheckSize(width, height, alpha == null ? 0 : alpha.LongLength, 1, "alpha");
            return FlipRows(alpha, width, height, destination);
        }
    }
}
