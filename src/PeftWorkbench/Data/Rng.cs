namespace PeftWorkbench.Data;

/// <summary>
/// A small, fully specified random generator (SplitMix64). Splits and procedural images depend only on
/// the seed and this code, never on the runtime's System.Random, so every machine sees the same data.
/// </summary>
public sealed class Rng
{
    ulong state;

    public Rng(ulong seed) { state = seed; }

    /// <summary>A generator for one named stream (task, split) derived from a base seed.</summary>
    public static Rng For(ulong seed, string stream)
    {
        ulong h = 14695981039346656037UL; // FNV-1a over the stream name
        foreach (char c in stream) { h ^= c; h *= 1099511628211UL; }
        return new Rng(seed ^ h);
    }

    public ulong NextULong()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    public double Uniform(double lo, double hi) => lo + (hi - lo) * NextDouble();

    /// <summary>Uniform integer in [0, n).</summary>
    public int Next(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must be positive");
        return (int)(NextDouble() * n);
    }

    public bool Chance(double p) => NextDouble() < p;

    /// <summary>Standard normal (Box-Muller).</summary>
    public double Normal()
    {
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>A permutation of 0..n-1 (Fisher-Yates).</summary>
    public int[] Permutation(int n)
    {
        var p = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--) { int j = Next(i + 1); (p[i], p[j]) = (p[j], p[i]); }
        return p;
    }

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];
}
