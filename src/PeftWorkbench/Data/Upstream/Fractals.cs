namespace PeftWorkbench.Data.Upstream;

/// <summary>
/// Formula-driven images in the manner of FractalDB (Kataoka et al., 2020): each class is an iterated function
/// system of 2-4 contractive affine maps drawn from the class seed; an image of the class is the attractor drawn
/// by the chaos game with the maps slightly perturbed, then placed, rotated, flipped and coloured at random. The
/// classes need no data, no labels from people and nothing of the downstream tasks.
/// </summary>
public sealed class Fractals : IUpstreamSource
{
    /// <summary>One affine map x' = a x + b y + e, y' = c x + d y + f.</summary>
    readonly record struct Map(double A, double B, double C, double D, double E, double F)
    {
        public double Det => Math.Abs(A * D - B * C);
        /// <summary>Largest singular value of [[a, b], [c, d]]: below 1 means the map contracts.</summary>
        public double Sigma
        {
            get
            {
                double s = A * A + B * B + C * C + D * D, det = A * D - B * C;
                return Math.Sqrt((s + Math.Sqrt(Math.Max(s * s - 4 * det * det, 0))) / 2);
            }
        }
    }

    readonly Map[][] systems;
    const int Points = 2500, Burn = 20;

    public string Name => "fractals";
    public int NumClasses => systems.Length;

    /// <summary>The class systems come from <paramref name="seed"/> alone; a system whose attractor fills too little of
    /// the frame (a line or a dot) is redrawn, so every class is a visible shape.</summary>
    public Fractals(int classes, ulong seed)
    {
        var rng = Rng.For(seed, "fractal-classes");
        systems = new Map[classes][];
        var mask = new float[32 * 32];
        for (int k = 0; k < classes; k++)
        {
            while (true)
            {
                int n = 2 + rng.Next(3);
                var maps = new Map[n];
                for (int i = 0; i < n; i++)
                {
                    Map m;
                    do m = new Map(rng.Uniform(-1, 1), rng.Uniform(-1, 1), rng.Uniform(-1, 1), rng.Uniform(-1, 1), rng.Uniform(-1, 1), rng.Uniform(-1, 1));
                    while (m.Sigma >= 0.9 || m.Det < 0.02);
                    maps[i] = m;
                }
                Array.Clear(mask);
                Attractor(maps, new Rng((ulong)k + 1), 32, mask, 0, 1, 0, false);
                if (mask.Count(v => v > 0) >= 0.12 * mask.Length) { systems[k] = maps; break; }
            }
        }
    }

    public int Draw(Rng rng, int cls, int size, Span<byte> chw)
    {
        var maps = systems[cls].Select(m => Jitter(m, rng)).ToArray();
        var mask = new float[size * size];
        Attractor(maps, rng, size, mask, rng.Uniform(0.65, 0.95), rng.Uniform(-Math.PI, Math.PI), rng.Uniform(-0.08, 0.08) * size, rng.Chance(0.5));
        Palette.Paint(rng, mask, size, chw);
        return cls;
    }

    static Map Jitter(Map m, Rng rng)
    {
        double J() => rng.Uniform(-0.04, 0.04);
        return new Map(m.A + J(), m.B + J(), m.C + J(), m.D + J(), m.E + J(), m.F + J());
    }

    /// <summary>Chaos game: maps picked in proportion to their area; points fitted to the frame (scale = share of the
    /// frame the attractor spans, then rotated and shifted), accumulated as a density in mask (0..1).</summary>
    static void Attractor(Map[] maps, Rng rng, int size, float[] mask, double fill, double angle, double shift, bool flip)
    {
        if (fill <= 0) fill = 0.9;
        var cum = new double[maps.Length];
        double total = maps.Sum(m => m.Det + 0.01), acc = 0;
        for (int i = 0; i < maps.Length; i++) { acc += (maps[i].Det + 0.01) / total; cum[i] = acc; }
        var xs = new double[Points]; var ys = new double[Points];
        double x = 0, y = 0;
        for (int t = 0; t < Points + Burn; t++)
        {
            double u = rng.NextDouble();
            int j = 0;
            while (j < maps.Length - 1 && u > cum[j]) j++;
            var m = maps[j];
            (x, y) = (m.A * x + m.B * y + m.E, m.C * x + m.D * y + m.F);
            if (t >= Burn) { xs[t - Burn] = x; ys[t - Burn] = y; }
        }
        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        for (int i = 0; i < Points; i++)
        {
            double px = flip ? -xs[i] : xs[i];
            (xs[i], ys[i]) = (cos * px - sin * ys[i], sin * px + cos * ys[i]);
        }
        double minX = xs.Min(), maxX = xs.Max(), minY = ys.Min(), maxY = ys.Max();
        double span = Math.Max(Math.Max(maxX - minX, maxY - minY), 1e-9);
        double scale = fill * (size - 1) / span;
        double ox = (size - 1) / 2.0 - scale * (minX + maxX) / 2 + shift, oy = (size - 1) / 2.0 - scale * (minY + maxY) / 2 + shift;
        foreach (var (px, py) in xs.Zip(ys))
        {
            int ix = (int)Math.Round(ox + scale * px), iy = (int)Math.Round(oy + scale * py);
            if ((uint)ix < (uint)size && (uint)iy < (uint)size) mask[iy * size + ix] += 1;
        }
        // Density to intensity: a pixel hit a few times is already bright, so thin parts stay visible.
        for (int p = 0; p < mask.Length; p++) mask[p] = mask[p] <= 0 ? 0 : (float)Math.Min(1, 0.45 + 0.2 * Math.Log(mask[p]));
    }
}
