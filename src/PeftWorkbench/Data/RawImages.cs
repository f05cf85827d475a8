namespace PeftWorkbench.Data;

/// <summary>
/// Images as bytes before they become tensors: Pixels holds N images of C x H x W (channel-major, 0..255),
/// Labels one class per image. Readers and renderers produce these; Transforms turns them into an ImageSet.
/// Bytes keep the caches small (a 32x32 RGB image is 3 KB) and make every transform start from the same data.
/// </summary>
public sealed record RawImages(byte[] Pixels, long[] Labels, int Channels, int Height, int Width, int NumClasses, string Source)
{
    public int Count => Labels.Length;
    public int ImageBytes => Channels * Height * Width;

    /// <summary>Checks sizes and labels; a reader calls this before handing images out.</summary>
    public RawImages Validated()
    {
        if (Channels <= 0 || Height <= 0 || Width <= 0)
            throw new InvalidDataException($"{Source}: bad image shape {Channels}x{Height}x{Width}");
        if ((long)Pixels.Length != (long)Labels.Length * ImageBytes)
            throw new InvalidDataException($"{Source}: {Pixels.Length} pixel bytes for {Labels.Length} images of {Channels}x{Height}x{Width}");
        for (int i = 0; i < Labels.Length; i++)
            if (Labels[i] < 0 || Labels[i] >= NumClasses)
                throw new InvalidDataException($"{Source}: image {i} has label {Labels[i]} outside [0, {NumClasses})");
        return this;
    }

    /// <summary>The images at the given indices, in that order.</summary>
    public RawImages Select(IReadOnlyList<int> indices, string? source = null)
    {
        int b = ImageBytes;
        var px = new byte[(long)indices.Count * b];
        var lb = new long[indices.Count];
        for (int k = 0; k < indices.Count; k++)
        {
            int i = indices[k];
            if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"{Source}: index outside [0, {Count})");
            Buffer.BlockCopy(Pixels, i * b, px, k * b, b);
            lb[k] = Labels[i];
        }
        return this with { Pixels = px, Labels = lb, Source = source ?? Source };
    }

    public RawImages Take(int start, int count, string? source = null) =>
        Select(Enumerable.Range(start, count).ToArray(), source);

    /// <summary>Images from several sets of the same shape and classes, one after another.</summary>
    public static RawImages Concat(IReadOnlyList<RawImages> parts, string source)
    {
        var first = parts[0];
        foreach (var p in parts)
            if (p.Channels != first.Channels || p.Height != first.Height || p.Width != first.Width || p.NumClasses != first.NumClasses)
                throw new ArgumentException($"{source}: cannot concatenate {p.Source} ({p.Channels}x{p.Height}x{p.Width}, {p.NumClasses} classes) with {first.Source}");
        return new RawImages(parts.SelectMany(p => p.Pixels).ToArray(), parts.SelectMany(p => p.Labels).ToArray(),
            first.Channels, first.Height, first.Width, first.NumClasses, source);
    }
}
