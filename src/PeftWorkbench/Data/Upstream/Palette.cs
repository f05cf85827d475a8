namespace PeftWorkbench.Data.Upstream;

/// <summary>One labelled class set of the broad upstream: draws an image of a given class (3 x size x size bytes).</summary>
public interface IUpstreamSource
{
    string Name { get; }
    int NumClasses { get; }
    /// <summary>Draws one image of class <paramref name="cls"/> into <paramref name="chw"/>; returns the class.</summary>
    int Draw(Rng rng, int cls, int size, Span<byte> chw);
}

/// <summary>Colours a 0..1 mask: a foreground and a background colour with enough contrast (grey or colour, either
/// polarity), a linear gradient and pixel noise, so the class is in the shape and never in the colours.</summary>
public static class Palette
{
    public static void Paint(Rng rng, float[] mask, int size, Span<byte> chw)
    {
        var (fg, bg) = Pair(rng);
        Composite(rng, mask, fg, bg, size, chw, maxGradient: 60, maxNoise: 18);
    }

    /// <summary>Writes bg + mask * (fg - bg) + a linear gradient + pixel noise into <paramref name="chw"/> (3 x size x
    /// size bytes). Half the time each: a gradient of amplitude up to <paramref name="maxGradient"/> at a random angle,
    /// Gaussian noise of sd up to <paramref name="maxNoise"/>. Draws from <paramref name="rng"/> in a fixed order (the
    /// rendered data of every seed depends on it).</summary>
    public static void Composite(Rng rng, float[] mask, double[] fg, double[] bg, int size, Span<byte> chw, double maxGradient, double maxNoise)
    {
        double gAmp = rng.Chance(0.5) ? rng.Uniform(0, maxGradient) : 0, gAngle = rng.Uniform(0, 2 * Math.PI);
        double noise = rng.Chance(0.5) ? rng.Uniform(0, maxNoise) : 0;
        double gx = Math.Cos(gAngle), gy = Math.Sin(gAngle);
        int hw = size * size;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int p = y * size + x;
                double grad = gAmp * (((x - size / 2.0) * gx + (y - size / 2.0) * gy) / size);
                for (int c = 0; c < 3; c++)
                {
                    double v = bg[c] + mask[p] * (fg[c] - bg[c]) + grad + (noise > 0 ? noise * rng.Normal() : 0);
                    chw[c * hw + p] = (byte)Math.Clamp(Math.Round(v), 0, 255);
                }
            }
    }

    /// <summary>Foreground and background: half grey (mostly light on dark), half random colours at least 60 apart in luma.</summary>
    public static (double[] Fg, double[] Bg) Pair(Rng rng)
    {
        var fg = new double[3]; var bg = new double[3];
        if (rng.Chance(0.5))
        {
            double b = rng.Uniform(0, 70), f = rng.Uniform(160, 255);
            if (rng.Chance(0.25)) (b, f) = (f, b);
            for (int c = 0; c < 3; c++) { bg[c] = b; fg[c] = f; }
        }
        else
            do { for (int c = 0; c < 3; c++) { fg[c] = rng.Uniform(0, 255); bg[c] = rng.Uniform(0, 255); } }
            while (Math.Abs(Luma(fg) - Luma(bg)) < 60);
        return (fg, bg);
    }

    /// <summary>Perceived brightness (ITU-R BT.601 weights) of an RGB colour.</summary>
    public static double Luma(double[] c) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}
