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

    /// <summary>Adds a row to the file named by PEFT_FUZZ_TABLE (tab-separated), when set: a case whose inputs all
    /// ended clean (its test asserts so; a failing test records nothing).</summary>
    public static void Record(string area, string kind, int tried, int clean, string item = "") =>
        Record(area, kind, new Outcomes { Clean = clean, Crash = tried - clean }, item);

    /// <summary>Adds a row with what each input ended as. Recorded before the test asserts, so a run on code without
    /// the fix still shows its crashes, hangs, silent wrong results and injections.</summary>
    public static void Record(string area, string kind, Outcomes o, string item = "")
    {
        if (Environment.GetEnvironmentVariable("PEFT_FUZZ_TABLE") is not { Length: > 0 } path) return;
        lock (typeof(FuzzTable))
            File.AppendAllText(path, $"{area}\t{kind}\t{o.Tried}\t{o.Clean}\t{item}\t{o.Crash}\t{o.Hang}\t{o.SilentWrong}\t{o.Injection}\n");
    }

    /// <summary>Offsets spread over [0, length): all of them when few, else count of them, always 0 and length - 1.</summary>
    public static IEnumerable<int> Offsets(int length, int count)
    {
        if (length <= count) return Enumerable.Range(0, length);
        return Enumerable.Range(0, count).Select(i => (int)((long)i * (length - 1) / (count - 1))).Distinct();
    }
}

/// <summary>How a fuzz case's inputs ended: clean (a right result or a clear error), a crash (an unexpected exception or
/// exit), a hang (past a generous bound; only for classifying, never asserted as a speed), a silent wrong result, or an
/// injection (a hostile value ran code or escaped where it landed).</summary>
sealed class Outcomes
{
    public int Clean, Crash, Hang, SilentWrong, Injection;
    public int Tried => Clean + Crash + Hang + SilentWrong + Injection;
    public override string ToString() => $"{Tried} tried: {Clean} clean, {Crash} crash, {Hang} hang, {SilentWrong} silent-wrong, {Injection} injection";
}
