namespace PeftWorkbench.Data.Upstream;

/// <summary>
/// Texture classes: eight periodic or noisy pattern families (stripes, checkers, dots, rings, waves, crosshatch,
/// spokes, blobs), each at a coarse and a fine scale (16 classes), at a random orientation, phase and colouring.
/// </summary>
public sealed class Textures : IUpstreamSource
{
    static readonly string[] Families = { "stripes", "checkers", "dots", "rings", "waves", "crosshatch", "spokes", "blobs" };
    public string Name => "textures";
    public int NumClasses => Families.Length * 2;

    public int Draw(Rng rng, int cls, int size, Span<byte> chw)
    {
        int family = cls / 2;
        bool fine = cls % 2 == 1;
        // Period in pixels: coarse 9-16, fine 3.5-6 (apart, so the scale is learnable).
        double period = fine ? rng.Uniform(3.5, 6) : rng.Uniform(9, 16);
        double w = 2 * Math.PI / period, angle = rng.Uniform(0, Math.PI), phase = rng.Uniform(0, 2 * Math.PI);
        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        double cx = rng.Uniform(0.3, 0.7) * size, cy = rng.Uniform(0.3, 0.7) * size;
        bool soft = rng.Chance(0.5);
        var blobs = family == 7 ? Blobs(rng, size, period) : null;
        var mask = new float[size * size];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double u = cos * (x - cx) + sin * (y - cy), v = -sin * (x - cx) + cos * (y - cy);
                double s = family switch
                {
                    0 => Math.Sin(w * u + phase),
                    1 => Math.Sin(w * u + phase) * Math.Sin(w * v),
                    2 => Math.Cos(w * u + phase) + Math.Cos(w * v) - 1.2,
                    3 => Math.Sin(w * Math.Sqrt(u * u + v * v) + phase),
                    4 => Math.Sin(w * u + 2.2 * Math.Sin(w * 0.5 * v) + phase),
                    5 => Math.Max(Math.Sin(w * u + phase), Math.Sin(w * v)) - 0.6,
                    6 => Math.Sin(Math.Round(2 * Math.PI * size / period / 4) * Math.Atan2(v, u) + phase),
                    _ => blobs![y * size + x],
                };
                mask[y * size + x] = soft ? (float)(0.5 + 0.5 * Math.Clamp(s, -1, 1)) : s > 0 ? 1f : 0f;
            }
        Palette.Paint(rng, mask, size, chw);
        return cls;
    }

    /// <summary>Smooth random field: a sum of random Gaussian bumps whose width follows the period, centred to mean 0.</summary>
    static double[] Blobs(Rng rng, int size, double period)
    {
        var f = new double[size * size];
        int n = (int)(2.5 * size * size / (period * period)) + 2;
        for (int k = 0; k < n; k++)
        {
            double bx = rng.Uniform(0, size), by = rng.Uniform(0, size), sign = rng.Chance(0.5) ? 1 : -1, r2 = period * period / 8;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    f[y * size + x] += sign * Math.Exp(-((x - bx) * (x - bx) + (y - by) * (y - by)) / r2);
        }
        double mean = f.Average();
        for (int i = 0; i < f.Length; i++) f[i] = 2 * (f[i] - mean);
        return f;
    }
}
