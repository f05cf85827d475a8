using System.Buffers.Binary;
using System.IO.Compression;
using TorchSharp;

namespace PeftWorkbench.Display;

/// <summary>A PNG image for display (either kernel): from a file, from PNG bytes, or from an image tensor.</summary>
public sealed class KernelImage
{
    public byte[] Png { get; }
    public int Width { get; }
    public int Height { get; }

    public KernelImage(byte[] png)
    {
        if (png.Length < 24 || !png.AsSpan(0, 8).SequenceEqual(Signature))
            throw new ArgumentException("Not PNG data (the 8-byte PNG signature is missing).", nameof(png));
        Png = png;
        Width = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16));
        Height = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20));
    }

    public static KernelImage FromFile(string path) =>
        File.Exists(path) ? new KernelImage(File.ReadAllBytes(path)) : throw new FileNotFoundException($"Image not found: {path}", path);

    /// <summary>An image tensor: [H, W] or [1|3, H, W] (channels first) or [H, W, 3]; floats in [0, 1] or bytes.</summary>
    public static KernelImage FromTensor(torch.Tensor image, int scale = 1)
    {
        using var scope = torch.NewDisposeScope();
        var t = image.detach().cpu();
        if (t.dim() == 3 && t.shape[0] is 1 or 3) t = t.permute(1, 2, 0);
        else if (t.dim() == 2) t = t.unsqueeze(-1);
        else if (!(t.dim() == 3 && t.shape[2] is 1 or 3))
            throw new ArgumentException($"KernelImage.FromTensor: expected [H,W], [C,H,W] or [H,W,C] with C = 1 or 3, got [{string.Join(", ", image.shape)}].");
        if (t.dtype != torch.ScalarType.Byte) t = (t.to_type(torch.ScalarType.Float32).clamp(0, 1) * 255).round().to_type(torch.ScalarType.Byte);
        if (scale > 1) t = t.repeat_interleave(scale, 0).repeat_interleave(scale, 1);
        int h = (int)t.shape[0], w = (int)t.shape[1], c = (int)t.shape[2];
        return new KernelImage(EncodePng(t.contiguous().data<byte>().ToArray(), w, h, c));
    }

    static readonly byte[] Signature = { 137, 80, 78, 71, 13, 10, 26, 10 };

    /// <summary>8-bit grey (channels = 1) or RGB (3) PNG, filter 0 on every row.</summary>
    internal static byte[] EncodePng(byte[] pixels, int width, int height, int channels)
    {
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
            for (int y = 0; y < height; y++)
            {
                z.WriteByte(0);
                z.Write(pixels, y * width * channels, width * channels);
            }
        using var png = new MemoryStream();
        png.Write(Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = (byte)(channels == 3 ? 2 : 0);
        WriteChunk(png, "IHDR", ihdr);
        WriteChunk(png, "IDAT", raw.ToArray());
        WriteChunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> b4 = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b4, data.Length); s.Write(b4);
        var typed = new byte[4 + data.Length];
        System.Text.Encoding.ASCII.GetBytes(type, typed);
        data.CopyTo(typed, 4);
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(b4, Crc32(typed)); s.Write(b4);
    }

    static readonly uint[] crcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = crcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    public override string ToString() => $"PNG image {Width}x{Height}";
}
