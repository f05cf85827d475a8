using Microsoft.Data.Analysis;

namespace PeftWorkbench.Findings;

/// <summary>How one of our numbers reads against the study's claim.</summary>
public enum Verdict { Agrees, Disagrees, Inconclusive }

/// <summary>
/// One claim of a finding as data: what is compared, our number, the study's (and, where the study's own number
/// depends on the epoch it reports, its best-epoch number), the rule that decides the verdict, and the verdict.
/// <see cref="Note"/> says what qualifies it (a variant, a budget diagnostic).
/// </summary>
public sealed record Claim(string What, double? Ours, double? Paper, Verdict Verdict, string Rule, double? PaperBestEpoch = null, string Note = "")
{
    public string VerdictText => Verdicts.Text(Verdict);
}

/// <summary>Verdicts, the claims table and the sentences every finding shares.</summary>
public static class Verdicts
{
    public static string Text(Verdict v) => v switch
    {
        Verdict.Agrees => "agrees",
        Verdict.Disagrees => "disagrees",
        _ => "inconclusive under this budget",
    };

    /// <summary>A claim whose rule held (<paramref name="holds"/>) agrees, else disagrees; null (nothing to compare) is
    /// inconclusive. On runs the diagnostics do not vouch for (<paramref name="budget"/> not <see cref="BudgetReading.Trusted"/>)
    /// either reading is inconclusive, and the note says which way the numbers point and why they are not vouched for: a
    /// longer budget could change the sign either way (under smoke, "PEFT methods above full FT" held only because full
    /// FT sat at chance).</summary>
    public static Claim Make(string what, double? ours, double? paper, bool? holds, string rule, BudgetReading budget,
        double? paperBest = null, string note = "")
    {
        var v = holds switch { null => Verdict.Inconclusive, true => Verdict.Agrees, false => Verdict.Disagrees };
        if (holds is bool h && !budget.Trusted)
        {
            v = Verdict.Inconclusive;
            note = Join(note, $"{(h ? "agrees" : "disagrees")} on these numbers, but {budget.Why}");
        }
        return new Claim(what, ours, paper, v, rule, paperBest, note);
    }

    static string Join(string a, string b) => a.Length == 0 ? b : b.Length == 0 ? a : a + "; " + b;

    /// <summary>claim, verdict, ours, paper, paper_best_epoch (when any claim has one), rule, note; numbers to 1 decimal.</summary>
    public static DataFrame Table(IEnumerable<Claim> claims)
    {
        var list = claims.ToList();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("claim", list.Select(c => c.What)),
            new StringDataFrameColumn("verdict", list.Select(c => c.VerdictText)),
            new PrimitiveDataFrameColumn<double>("ours", list.Select(c => Round(c.Ours))),
            new PrimitiveDataFrameColumn<double>("paper", list.Select(c => Round(c.Paper))),
        };
        if (list.Any(c => c.PaperBestEpoch is not null))
            cols.Add(new PrimitiveDataFrameColumn<double>("paper_best_epoch", list.Select(c => Round(c.PaperBestEpoch))));
        cols.Add(new StringDataFrameColumn("rule", list.Select(c => c.Rule)));
        cols.Add(new StringDataFrameColumn("note", list.Select(c => c.Note)));
        return new DataFrame(cols);
    }

    /// <summary>"2 of 4 claims agree, 1 disagrees, 1 is inconclusive under this budget".</summary>
    public static string Tally(IReadOnlyCollection<Claim> claims)
    {
        int a = claims.Count(c => c.Verdict == Verdict.Agrees), d = claims.Count(c => c.Verdict == Verdict.Disagrees);
        int i = claims.Count - a - d;
        return $"{a} of {claims.Count} claims agree with the study, {d} {(d == 1 ? "disagrees" : "disagree")}, {i} {(i == 1 ? "is" : "are")} inconclusive under this budget";
    }

    /// <summary>One verdict per claim, for the index page: "spread: agrees; full FT: disagrees".</summary>
    public static string VerdictLine(IEnumerable<Claim> claims) =>
        string.Join("; ", claims.Select(c => $"{c.What}: {c.VerdictText}"));

    /// <summary>The summary in words: per claim, what ours and the paper's numbers are and the verdict.</summary>
    public static string InWords(IEnumerable<Claim> claims) =>
        string.Join("\n", claims.Select(c => $"- {c.What}: ours {F(c.Ours)}, the study's {F(c.Paper)}" +
            (c.PaperBestEpoch is double b ? $" ({b:F1} at its best epoch)" : "") + $" -> {c.VerdictText} ({c.Rule})" +
            (c.Note.Length > 0 ? $"; {c.Note}" : "")));

    internal static double? Round(double? v) => v is double x && double.IsFinite(x) ? Math.Round(x, 1) : null;
    static string F(double? v) => v is double x && double.IsFinite(x) ? x.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) : "n/a";
}
