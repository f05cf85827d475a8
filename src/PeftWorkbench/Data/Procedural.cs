using SkiaSharp;

namespace PeftWorkbench.Data;

/// <summary>
/// A reusable RGB drawing surface for procedural tasks: SkiaSharp draws, <see cref="CopyTo"/> writes the
/// pixels channel-major (C, H, W) into a RawImages buffer.
/// </summary>
public sealed class Surface : IDisposable
{
    public readonly int Size;
    public readonly SKBitmap Bitmap;
    public readonly SKCanvas Canvas;

    public Surface(int size)
    {
        Size = size;
        Bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        Canvas = new SKCanvas(Bitmap);
    }

    public void Reset(SKColor background) { Canvas.ResetMatrix(); Canvas.Clear(background); }

    public void CopyTo(Span<byte> chw)
    {
        Canvas.Flush();
        var px = Bitmap.GetPixelSpan();
        int hw = Size * Size;
        for (int p = 0; p < hw; p++)
        {
            chw[p] = px[4 * p]; chw[hw + p] = px[4 * p + 1]; chw[2 * hw + p] = px[4 * p + 2];
        }
    }

    /// <summary>Adds Gaussian pixel noise of the given std (0..255 scale) in place.</summary>
    public static void AddNoise(Span<byte> chw, Rng rng, double std)
    {
        if (std <= 0) return;
        for (int i = 0; i < chw.Length; i++) chw[i] = (byte)Math.Clamp(Math.Round(chw[i] + std * rng.Normal()), 0, 255);
    }

    public void Dispose() { Canvas.Dispose(); Bitmap.Dispose(); }
}

/// <summary>One procedural task family: draws an image for a random factor setting and returns its label.</summary>
public interface IProceduralTask
{
    string Name { get; }
    int NumClasses { get; }
    /// <summary>Draws one image into <paramref name="chw"/> (3 x size x size) and returns its label.</summary>
    int Draw(Surface s, Rng rng, Span<byte> chw);
}

public static class Procedural
{
    /// <summary>Renders count images of a task; the same seed and stream give the same images and labels.</summary>
    public static RawImages Render(IProceduralTask task, int count, ulong seed, string stream, int size = 32)
    {
        var rng = Rng.For(seed, $"{task.Name}/{stream}");
        var pixels = new byte[(long)count * 3 * size * size];
        var labels = new long[count];
        using var surface = new Surface(size);
        for (int i = 0; i < count; i++)
            labels[i] = task.Draw(surface, rng, pixels.AsSpan(i * 3 * size * size, 3 * size * size));
        return new RawImages(pixels, labels, 3, size, size, task.NumClasses, $"{task.Name} ({stream}, seed {seed})").Validated();
    }

    internal static SKColor Hsv(double h, double s, double v) => SKColor.FromHsv((float)(h % 360), (float)(s * 100), (float)(v * 100));
}
