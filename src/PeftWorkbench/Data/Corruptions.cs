namespace PeftWorkbench.Data;

/// <summary>
/// Distribution-shift test sets in the manner of ImageNet-C/CIFAR-10-C: a corruption applied at severity 1..5
/// to a test split. Deterministic: the random parts draw from <see cref="Rng"/> seeded by name and severity.
/// Severities are modelled on CIFAR-10-C's (32 px images).
/// </summary>
public static class Corruptions
{
    public static IReadOnlyList<string> Names { get; } = new[] { "gaussian_noise", "impulse_noise", "gaussian_blur", "contrast", "pixelate" };
    public const int MaxSeverity = 5;

    public static RawImages Apply(RawImages images, string name, int severity, ulong seed = 7)
    {
        if (severity is < 1 or > MaxSeverity) throw new ArgumentOutOfRangeException(nameof(severity), severity, $"severity must be 1..{MaxSeverity}");
        var rng = Rng.For(seed, $"{name}/{severity}");
        var outPx = (byte[])images.Pixels.Clone();
        int c = images.Channels, h = images.Height, w = images.Width, b = images.ImageBytes;
        int s = severity - 1;
        for (int i = 0; i < images.Count; i++)
        {
            var img = outPx.AsSpan(i * b, b);
            switch (name)
            {
                case "gaussian_noise":
                    double std = new[] { 0.04, 0.06, 0.08, 0.09, 0.10 }[s] * 255 * 1.5;
                    for (int p = 0; p < b; p++) img[p] = Clamp(img[p] + std * rng.Normal());
                    break;
                case "impulse_noise":
                    double amount = new[] { 0.01, 0.02, 0.03, 0.05, 0.07 }[s];
                    for (int p = 0; p < h * w; p++)
                        if (rng.Chance(amount)) { byte v = rng.Chance(0.5) ? (byte)0 : (byte)255; for (int ch = 0; ch < c; ch++) img[ch * h * w + p] = v; }
                    break;
                case "gaussian_blur":
                    Blur(img, c, h, w, new[] { 0.4, 0.6, 0.7, 0.8, 1.0 }[s] * 1.2);
                    break;
                case "contrast":
                    double f = new[] { 0.75, 0.5, 0.4, 0.3, 0.15 }[s];
                    for (int ch = 0; ch < c; ch++)
                    {
                        var plane = img.Slice(ch * h * w, h * w);
                        double mean = 0; foreach (var v in plane) mean += v; mean /= plane.Length;
                        for (int p = 0; p < plane.Length; p++) plane[p] = Clamp((plane[p] - mean) * f + mean);
                    }
                    break;
                case "pixelate":
                    Pixelate(img, c, h, w, new[] { 2, 3, 4, 5, 6 }[s]);
                    break;
                default:
                    throw new ArgumentException($"Unknown corruption '{name}'. Known: {string.Join(", ", Names)}.", nameof(name));
            }
        }
        return images with { Pixels = outPx, Source = $"{images.Source} + {name} severity {severity}" };
    }

    static byte Clamp(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    // Separable Gaussian, edges clamped.
    static void Blur(Span<byte> img, int c, int h, int w, double sigma)
    {
        int rad = Math.Max(1, (int)Math.Ceiling(2.5 * sigma));
        var k = Enumerable.Range(-rad, 2 * rad + 1).Select(d => Math.Exp(-d * d / (2 * sigma * sigma))).ToArray();
        double sum = k.Sum(); for (int i = 0; i < k.Length; i++) k[i] /= sum;
        var tmp = new double[h * w];
        for (int ch = 0; ch < c; ch++)
        {
            var plane = img.Slice(ch * h * w, h * w);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    double acc = 0;
                    for (int d = -rad; d <= rad; d++) acc += k[d + rad] * plane[y * w + Math.Clamp(x + d, 0, w - 1)];
                    tmp[y * w + x] = acc;
                }
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    double acc = 0;
                    for (int d = -rad; d <= rad; d++) acc += k[d + rad] * tmp[Math.Clamp(y + d, 0, h - 1) * w + x];
                    plane[y * w + x] = Clamp(acc);
                }
        }
    }

    static void Pixelate(Span<byte> img, int c, int h, int w, int block)
    {
        for (int ch = 0; ch < c; ch++)
        {
            var plane = img.Slice(ch * h * w, h * w);
            for (int by = 0; by < h; by += block)
                for (int bx = 0; bx < w; bx += block)
                {
                    double acc = 0; int n = 0;
                    for (int y = by; y < Math.Min(by + block, h); y++) for (int x = bx; x < Math.Min(bx + block, w); x++) { acc += plane[y * w + x]; n++; }
                    byte v = Clamp(acc / n);
                    for (int y = by; y < Math.Min(by + block, h); y++) for (int x = bx; x < Math.Min(bx + block, w); x++) plane[y * w + x] = v;
                }
        }
    }
}
