namespace PeftWorkbench.Data.Upstream;

/// <summary>Rendered characters as an upstream source: class k = <see cref="GlyphRenderer.Characters"/>[k], bent by up to
/// <paramref name="warp"/> pixels (<see cref="GlyphRenderer.Warp"/>; 0: not at all).</summary>
public sealed class GlyphSource(GlyphRenderer renderer, double warp = 0) : IUpstreamSource
{
    public string Name => "glyphs";
    public int NumClasses => GlyphRenderer.NumClasses;
    public int Draw(Rng rng, int cls, int size, Span<byte> chw) { renderer.DrawOne(rng, cls, size, chw, warp); return cls; }
}

/// <summary>
/// The broad upstream: several labelled class sets under one head. Class ids run source by source in the order
/// given, so with the glyphs first head outputs 0-9 stay the digits (zero-shot MNIST still works). Each image
/// picks its source by share, then its class (glyphs: <see cref="GlyphRenderer.DigitShare"/> digits, as the
/// glyph-only recipe; other sources uniformly). A (seed, stream) pair gives the same images on every machine:
/// the pre-training loop renders chunk k of the training stream as stream "train/k", so its data position is
/// just the step count.
/// </summary>
public sealed class BroadUpstream
{
    public IReadOnlyList<(IUpstreamSource Source, double Share, int Offset)> Sources { get; }
    public int NumClasses { get; }

    public BroadUpstream(IEnumerable<(IUpstreamSource Source, double Share)> sources)
    {
        var list = new List<(IUpstreamSource, double, int)>();
        int offset = 0;
        foreach (var (s, share) in sources)
        {
            if (share <= 0) throw new ArgumentException($"upstream source '{s.Name}': share must be positive, got {share}");
            list.Add((s, share, offset));
            offset += s.NumClasses;
        }
        if (list.Count == 0) throw new ArgumentException("the upstream needs at least one source");
        double total = list.Sum(x => x.Item2);
        Sources = list.Select(x => (x.Item1, x.Item2 / total, x.Item3)).ToList();
        NumClasses = offset;
    }

    /// <summary>Renders count labelled RGB images of size x size for (seed, stream).</summary>
    public RawImages Render(int count, ulong seed, string stream, int size = 32)
    {
        var rng = Rng.For(seed, "broad/" + stream);
        int bytes = 3 * size * size;
        var pixels = new byte[(long)count * bytes];
        var labels = new long[count];
        for (int i = 0; i < count; i++)
        {
            double u = rng.NextDouble(), acc = 0;
            int j = 0;
            while (j < Sources.Count - 1 && u >= (acc += Sources[j].Share)) j++;
            var (source, _, offset) = Sources[j];
            int cls = source is GlyphSource
                ? (rng.Chance(GlyphRenderer.DigitShare) ? rng.Next(10) : 10 + rng.Next(GlyphRenderer.NumClasses - 10))
                : rng.Next(source.NumClasses);
            labels[i] = offset + source.Draw(rng, cls, size, pixels.AsSpan((int)((long)i * bytes), bytes));
        }
        return new RawImages(pixels, labels, 3, size, size, NumClasses, $"broad upstream ({stream}, seed {seed})").Validated();
    }

    /// <summary>Which source a class id belongs to (for per-source accuracy and class names).</summary>
    public (IUpstreamSource Source, int Class) SourceOf(long label)
    {
        for (int j = Sources.Count - 1; j >= 0; j--)
            if (label >= Sources[j].Offset) return (Sources[j].Source, (int)(label - Sources[j].Offset));
        throw new ArgumentOutOfRangeException(nameof(label), label, "negative class id");
    }
}
