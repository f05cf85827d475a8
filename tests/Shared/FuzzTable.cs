namespace PeftWorkbench.Fuzz;

/// <summary>
/// The fuzz suite's shared knobs and its table. Every fuzz test tries a number of generated hostile inputs of one kind
/// and asserts each ends clean (a right result, or an error naming the file, key or line, within a time bound); it
/// records the kind here. CI runs them at scale 1; environment/fuzz.sh runs them at a larger PEFT_FUZZ_SCALE and prints
/// the table (area, case, tried, clean, the issue-17 item it guards).
/// </summary>
static class FuzzTable
{
    /// <summary>How many times more inputs than CI tries (PEFT_FUZZ_SCALE, default 1).</summary>
    public static int Scale { get; } = int.TryParse(Environment.GetEnvironmentVariable("PEFT_FUZZ_SCALE"), out var s) && s > 0 ? s : 1;

    /// <summary>Adds a row to the file named by PEFT_FUZZ_TABLE (tab-separated), when set.</summary>
    public static void Record(string area, string kind, int tried, int clean, string item = "")
    {
        if (Environment.GetEnvironmentVariable("PEFT_FUZZ_TABLE") is not { Length: > 0 } path) return;
        lock (typeof(FuzzTable)) File.AppendAllText(path, $"{area}\t{kind}\t{tried}\t{clean}\t{item}\n");
    }

    /// <summary>Offsets spread over [0, length): all of them when few, else count of them, always 0 and length - 1.</summary>
    public static IEnumerable<int> Offsets(int length, int count)
    {
        if (length <= count) return Enumerable.Range(0, length);
        return Enumerable.Range(0, count).Select(i => (int)((long)i * (length - 1) / (count - 1))).Distinct();
    }
}
