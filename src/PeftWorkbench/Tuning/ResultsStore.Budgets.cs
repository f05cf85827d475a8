using System.Text.Json;
using PeftWorkbench.Checkpoints;

namespace PeftWorkbench.Tuning;

/// <summary>
/// budgets.json: per profile, protocol and task, the training budget its trials were recorded under. A trial key
/// names the profile, not what the profile says (epochs, warmup, schedule ...), so when a profile's budget changes
/// (a new release, an edited table) the finished trials of the old budget would be read back as if they were the
/// new one's. <see cref="CheckBudget"/> refuses that before any trial runs.
/// </summary>
public sealed partial class ResultsStore
{
    string BudgetsPath => Path.Combine(Dir, "budgets.json");

    /// <summary>
    /// Records the budget of <paramref name="options"/> for <paramref name="task"/> the first time, and throws
    /// <see cref="InvalidOperationException"/> (naming the store, both budgets and what to do) when the store holds
    /// another one. A store from before budgets.json is judged by its records' epoch counts.
    /// </summary>
    public void CheckBudget(ProtocolOptions options, string task)
    {
        string scope = TrialIdentity.Scope(options, task), budget = options.Budget;
        using var _ = Lock();
        var budgets = ReadBudgets();
        if (budgets.TryGetValue(scope, out var recorded))
        {
            if (recorded != budget) throw Mismatch(scope, $"its trials were trained with {Differences(recorded, budget)} (all of it: {recorded})", budget);
            return;
        }
        if (UnstampedMismatch(options, task) is { } found) throw Mismatch(scope, found, budget);
        budgets[scope] = budget;
        AtomicFile.Write(BudgetsPath, fs => JsonSerializer.Serialize(fs, budgets, new JsonSerializerOptions { WriteIndented = true }));
    }

    SortedDictionary<string, string> ReadBudgets()
    {
        if (!File.Exists(BudgetsPath)) return new(StringComparer.Ordinal);
        Checkpoints.RegularFile.RequireForReading(BudgetsPath, $"Results store {Dir}: its budgets file"); // a FIFO would hang the read
        try
        {
            var read = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(BudgetsPath));
            if (read is null || read.Values.Any(v => v is null)) throw new JsonException("not an object of strings");
            return new(read, StringComparer.Ordinal);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Results store {Dir}: {BudgetsPath} is not a budgets file ({e.Message}). " +
                "It says what budget each profile's trials were trained with; restore it or move the store aside.", e);
        }
    }

    /// <summary>For a store written before budgets.json: an "ok" record of this scope whose epoch count is not the
    /// one the profile trains now (diverged trials may stop early and say nothing; such stores predate rungs).</summary>
    string? UnstampedMismatch(ProtocolOptions options, string task)
    {
        var odd = Read().Records.FirstOrDefault(r => r.Ok && r.Config.Profile == options.Profile
            && r.Config.Protocol == options.Protocol && r.Config.Task == task && r.Config.TrainImages == options.TrainImages && r.Epochs != (r.Config.Epochs ?? options.Train.Epochs));
        return odd is null ? null : $"it holds {odd.Key}, trained for {odd.Epochs} epochs (recorded before stores noted their budget)";
    }

    /// <summary>The phrases of <paramref name="recorded"/> that <paramref name="now"/> lacks, e.g. "tune 5 epochs".</summary>
    static string Differences(string recorded, string now)
    {
        static IEnumerable<string> Phrases(string b) => b.Split("; ").SelectMany(part =>
        {
            var items = part.Split(", ");
            // "tune 2 epochs, warmup 1" -> "tune 2 epochs", "tune warmup 1": each item says which phase it belongs to.
            var phase = items[0].Split(' ')[0];
            return items.Select((x, i) => i == 0 || phase is not ("tune" or "final") ? x : $"{phase} {x}");
        });
        var ours = Phrases(now).ToHashSet();
        return string.Join(", ", Phrases(recorded).Where(x => !ours.Contains(x)).DefaultIfEmpty("another budget"));
    }

    InvalidOperationException Mismatch(string scope, string what, string budget) => new(
        $"Results store {Dir} holds {scope} trials of another budget: {what}; profile '{scope.Split('/')[0]}' now trains: {budget}. " +
        $"Reusing them would mix the two. Move the store aside (mv {Shell.Quote(Dir)} {Shell.Quote(Dir + ".old")}) or use another store.");
}
