using SkiaSharp;

namespace PeftWorkbench.Data;

/// <summary>Smooth value noise on a lattice (bilinear with smoothstep), summed over octaves: the texture base of specialised tasks.</summary>
public sealed class ValueNoise
{
    readonly double[] grid;
    readonly int n;
    public ValueNoise(Rng rng, int n = 16) { this.n = n; grid = Enumerable.Range(0, n * n).Select(_ => rng.NextDouble()).ToArray(); }

    double At(int x, int y) => grid[((y % n + n) % n) * n + ((x % n + n) % n)];

    public double Sample(double x, double y)
    {
        int x0 = (int)Math.Floor(x), y0 = (int)Math.Floor(y);
        double fx = x - x0, fy = y - y0;
        fx = fx * fx * (3 - 2 * fx); fy = fy * fy * (3 - 2 * fy);
        double a = At(x0, y0) + (At(x0 + 1, y0) - At(x0, y0)) * fx;
        double b = At(x0, y0 + 1) + (At(x0 + 1, y0 + 1) - At(x0, y0 + 1)) * fx;
        return a + (b - a) * fy;
    }

    /// <summary>Fractal noise in about 0..1: octaves of halving amplitude and doubling frequency.</summary>
    public double Fractal(double x, double y, int octaves = 3)
    {
        double sum = 0, amp = 1, norm = 0, f = 1;
        for (int o = 0; o < octaves; o++) { sum += amp * Sample(x * f + 17 * o, y * f + 31 * o); norm += amp; amp *= 0.5; f *= 2; }
        return sum / norm;
    }
}

/// <summary>
/// Remote-sensing-like overhead land cover (the role of EuroSAT/RESISC45 in VTAB's specialised group): eight
/// classes (forest, water, river, crops, pasture, residential, industrial, highway) drawn from noise fields, field
/// stripes, roof grids and roads at a random rotation, scale, colour cast and haze. Unlike the upstream
/// characters, these are textures and layouts with no object in the middle.
/// </summary>
public sealed class LandcoverTask : IProceduralTask
{
    public static readonly string[] Classes = { "forest", "water", "river", "crops", "pasture", "residential", "industrial", "highway" };
    public string Name => "landcover";
    public int NumClasses => Classes.Length;

    public int Draw(Surface s, Rng rng, Span<byte> chw)
    {
        int cls = rng.Next(Classes.Length), size = s.Size;
        var noise = new ValueNoise(rng);
        double freq = rng.Uniform(0.15, 0.3), angle = rng.Uniform(0, Math.PI), ca = Math.Cos(angle), sa = Math.Sin(angle);
        double cast = rng.Uniform(-12, 12), haze = rng.Uniform(0, 0.25);
        (double r, double g, double b) Field(double n, (double, double, double) lo, (double, double, double) hi) =>
            (lo.Item1 + (hi.Item1 - lo.Item1) * n, lo.Item2 + (hi.Item2 - lo.Item2) * n, lo.Item3 + (hi.Item3 - lo.Item3) * n);
        double roadOffset = rng.Uniform(-6, 6), stripe = rng.Uniform(2.5, 5), block = rng.Uniform(4, 7);
        int hw = size * size;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double u = (x - size / 2.0) * ca + (y - size / 2.0) * sa, v = -(x - size / 2.0) * sa + (y - size / 2.0) * ca;
                double n = noise.Fractal(x * freq, y * freq);
                var green = Field(n, (20, 60, 20), (70, 120, 50));
                (double r, double g, double b) px = cls switch
                {
                    0 => Field(noise.Fractal(x * freq * 2.5, y * freq * 2.5), (10, 40, 15), (50, 95, 40)),
                    1 => Field(n, (20, 40, 90), (40, 75, 130)),
                    2 => Math.Abs(v - roadOffset - 4 * Math.Sin(u * 0.2)) < 3.5 ? Field(n, (25, 50, 100), (45, 80, 130)) : green,
                    3 => Field(((int)Math.Floor(u / stripe) % 3 + 3) % 3 / 2.0 * 0.6 + 0.4 * n, (90, 110, 40), (170, 160, 80)),
                    4 => Field(n, (80, 130, 60), (120, 165, 80)),
                    5 => Mod(u, block) < block * 0.55 && Mod(v, block) < block * 0.55
                        ? Field(noise.Sample(Math.Floor(u / block) + 40, Math.Floor(v / block)), (120, 60, 50), (190, 150, 130)) : green,
                    6 => Mod(u, 2 * block) < block * 1.5 && Mod(v, 2 * block) < block * 1.4
                        ? Field(noise.Sample(Math.Floor(u / (2 * block)) + 80, Math.Floor(v / (2 * block))), (140, 140, 145), (200, 200, 205)) : Field(n, (90, 90, 85), (120, 115, 105)),
                    _ => Math.Abs(v - roadOffset) < 2.2 ? (110.0, 110.0, 115.0) : Math.Abs(v - roadOffset) < 2.8 ? (200.0, 200.0, 190.0) : green,
                };
                double hz = 200 * haze;
                chw[y * size + x] = Px(px.r * (1 - haze) + hz + cast);
                chw[hw + y * size + x] = Px(px.g * (1 - haze) + hz);
                chw[2 * hw + y * size + x] = Px(px.b * (1 - haze) + hz - cast);
            }
        Surface.AddNoise(chw, rng, 4);
        return cls;
    }

    static double Mod(double a, double m) => ((a % m) + m) % m;
    static byte Px(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);
}

/// <summary>
/// Histology-like tissue patches (the role of Patch Camelyon in VTAB's specialised group): H&amp;E-coloured
/// (pink eosin background, purple hematoxylin nuclei) with per-image stain variation and focus blur. Classes
/// are tissue types told apart by nucleus size, shape, density and darkness: normal, tumour, stroma, lymphocytes.
/// </summary>
public sealed class CellsTask : IProceduralTask
{
    public static readonly string[] Classes = { "normal", "tumour", "stroma", "lymphocytes" };
    public string Name => "cells";
    public int NumClasses => Classes.Length;

    public int Draw(Surface s, Rng rng, Span<byte> chw)
    {
        int cls = rng.Next(Classes.Length), size = s.Size;
        // Stain variation: hue and strength of both stains change per slide.
        var eosin = Procedural.Hsv(rng.Uniform(320, 350), rng.Uniform(0.15, 0.35), rng.Uniform(0.85, 0.97));
        var hema = Procedural.Hsv(rng.Uniform(250, 285), rng.Uniform(0.45, 0.75), rng.Uniform(0.3, 0.55));
        s.Reset(eosin);
        var c = s.Canvas;
        using (var fibre = new SKPaint { Color = Procedural.Hsv(rng.Uniform(325, 345), rng.Uniform(0.3, 0.5), rng.Uniform(0.7, 0.85)), IsAntialias = true, StrokeWidth = 1, Style = SKPaintStyle.Stroke })
        {
            int fibres = cls == 2 ? 14 : 4;
            double dir = rng.Uniform(0, Math.PI);
            for (int i = 0; i < fibres; i++)
            {
                double a = dir + rng.Uniform(-0.2, 0.2), x = rng.Uniform(0, size), y = rng.Uniform(0, size), l = rng.Uniform(8, 20);
                c.DrawLine((float)(x - l * Math.Cos(a)), (float)(y - l * Math.Sin(a)), (float)(x + l * Math.Cos(a)), (float)(y + l * Math.Sin(a)), fibre);
            }
        }
        var (count, rMin, rMax, elong, irregular, dark) = cls switch
        {
            0 => (rng.Next(5) + 6, 1.3, 1.9, 1.0, 0.05, 0.0),
            1 => (rng.Next(6) + 12, 2.0, 3.2, 1.2, 0.35, 0.15),
            2 => (rng.Next(5) + 6, 0.8, 1.1, 3.0, 0.1, 0.0),
            _ => (rng.Next(10) + 22, 0.9, 1.3, 1.0, 0.05, 0.35),
        };
        double dir2 = rng.Uniform(0, 180);
        for (int i = 0; i < count; i++)
        {
            double r = rng.Uniform(rMin, rMax), x = rng.Uniform(1, size - 1), y = rng.Uniform(1, size - 1);
            var col = hema.WithAlpha((byte)(rng.Uniform(170, 230))).Darken(dark);
            using var paint = new SKPaint { Color = col, IsAntialias = true };
            using var path = new SKPath();
            int k = 10;
            for (int j = 0; j < k; j++)
            {
                double t = 2 * Math.PI * j / k, rr = r * (1 + irregular * (rng.NextDouble() - 0.5) * 2);
                var p = new SKPoint((float)(rr * elong * Math.Cos(t)), (float)(rr * Math.Sin(t)));
                if (j == 0) path.MoveTo(p); else path.LineTo(p);
            }
            path.Close();
            c.Save();
            c.Translate((float)x, (float)y);
            c.RotateDegrees((float)(cls == 2 ? dir2 + rng.Uniform(-15, 15) : rng.Uniform(0, 360)));
            c.DrawPath(path, paint);
            c.Restore();
        }
        s.CopyTo(chw);
        Surface.AddNoise(chw, rng, 5);
        return cls;
    }
}

static class ColorExtensions
{
    public static SKColor Darken(this SKColor c, double t) =>
        new((byte)(c.Red * (1 - t)), (byte)(c.Green * (1 - t)), (byte)(c.Blue * (1 - t)), c.Alpha);
}
