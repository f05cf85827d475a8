using System.Globalization;

namespace PeftWorkbench.Tuning;

/// <summary>
/// A grid written as the study writes one (its tuning-grid rows: {'lora_bottleneck': 8, 'lr': 0.001, 'wd': 0.0001}):
/// each key's values, the method's keys beside "lr" and "wd". <see cref="Split"/> turns it into what the protocol
/// tunes: the method grid (the cartesian product of the method's keys) and the lr and wd grids.
/// </summary>
public static class HyperGrid
{
    /// <summary>The method grid in key order, and the lr and wd values (null where the grid leaves them to the profile).
    /// Refuses an empty key, a key without values, and an lr or wd that is not a positive number (wd may be 0), naming
    /// it; the method's keys and values are checked by <see cref="Protocol.ValidateGrid"/>.</summary>
    public static (IReadOnlyList<SortedDictionary<string, string>> Method, IReadOnlyList<double>? Lrs, IReadOnlyList<double>? WeightDecays)
        Split(string method, IReadOnlyDictionary<string, string[]> grid)
    {
        foreach (var (key, values) in grid)
        {
            if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("grid: a key is empty.");
            if (values is null || values.Length == 0) throw new ArgumentException($"grid: '{key}' has no values.");
        }
        IReadOnlyList<double>? Numbers(string key, bool zeroAllowed) => grid.TryGetValue(key, out var values)
            ? values.Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x) && (x > 0 || (zeroAllowed && x == 0))
                ? x : throw new ArgumentException($"grid: {key} value '{v}' is not a {(zeroAllowed ? "non-negative" : "positive")} number.")).Distinct().ToList()
            : null;
        var lrs = Numbers("lr", zeroAllowed: false);
        var wds = Numbers("wd", zeroAllowed: true);
        IEnumerable<SortedDictionary<string, string>> points = new[] { new SortedDictionary<string, string>(StringComparer.Ordinal) };
        foreach (var (key, values) in grid.Where(kv => kv.Key is not ("lr" or "wd")).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            points = points.SelectMany(p => values.Distinct().Select(v => new SortedDictionary<string, string>(p, StringComparer.Ordinal) { [key] = v.Trim() }));
        var methodGrid = points.ToList();
        Protocol.ValidateGrid(method, methodGrid);
        return (methodGrid, lrs, wds);
    }
}
