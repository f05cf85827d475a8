using System.Text.Json.Nodes;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Kernel.Execution;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Kernel.Tests.Fuzz;

/// <summary>
/// Issue 26 items 9 and 13: the `#r "nuget:"` directive parser under hostile lines (long runs of spaces that made the
/// old regular expressions backtrack cubically, unclosed quotes, empty names, trailing text). Each cell parses to the
/// right code or to our own error naming the line; a shell request with such a line never holds up the kernel.
/// </summary>
public class DirectiveFuzzTests
{
    static readonly PackageCatalog Packages = new();

    /// <summary>Hostile cells of about <paramref name="n"/> characters.</summary>
    static IEnumerable<(string Cell, string? Error)> Cells(int n)
    {
        var spaces = new string(' ', n);
        yield return ($"#r \"nuget:{spaces}", "no closing quote");
        yield return ($"#r \"nuget: PeftWorkbench,{spaces}", "no closing quote");
        yield return ($"#r \"nuget: X{spaces},{spaces}", "no closing quote");
        yield return ($"#r{spaces}\"nuget:{spaces}x", "no closing quote");
        yield return ($"#i \"nuget:{spaces}", "no closing quote");
        yield return ($"#r \"nuget:{spaces}\"", "names no package");
        yield return ($"#r \"nuget: PeftWorkbench\" {spaces}// why", "is followed by");
        yield return ($"{spaces}#!time{spaces}\n1", null);
        yield return ($"{spaces}\n{spaces}#region{spaces}\n#endregion", null);
    }

    static string Verdict(string cell, string? error)
    {
        try
        {
            var parsed = Directives.Parse(cell, Packages);
            if (error is not null) return "silent-wrong: parsed without the error '" + error + "'";
            return parsed.Code.Length == cell.Replace("\r\n", "\n").Length ? "clean" : "silent-wrong: the code changed length";
        }
        catch (DirectiveException e)
        {
            if (error is null) return "silent-wrong: refused a good cell: " + e.Message;
            return e.Message.Contains(error) && e.Message.StartsWith("(line 1)") && e.Message.Length < 300 ? "clean" : "crash: unclear error: " + e.Message[..Math.Min(200, e.Message.Length)];
        }
        catch (Exception e) { return $"crash: {e.GetType().Name}: {e.Message}"; }
    }

    [Fact]
    public void HostileDirectiveLinesParseOnceToTheRightResultOrOurError()
    {
        var outcomes = new Outcomes();
        var failures = new List<string>();
        foreach (var n in new[] { 10, 3_000, 20_000 * FuzzTable.Scale })
            foreach (var (cell, error) in Cells(n))
            {
                var task = Task.Run(() => Verdict(cell, error));
                // A hang bound for the table only: the linear parser takes milliseconds; the old one hours at 20,000.
                var verdict = task.Wait(TimeSpan.FromSeconds(60)) ? task.Result : "hang";
                switch (verdict.Split(':')[0])
                {
                    case "clean": outcomes.Clean++; continue;
                    case "hang": outcomes.Hang++; break;
                    case "silent-wrong": outcomes.SilentWrong++; break;
                    default: outcomes.Crash++; break;
                }
                failures.Add($"{n} chars, {cell[..Math.Min(30, cell.Length)].Replace("\n", "\\n")}...: {verdict}");
            }
        FuzzTable.Record("kernel", "#r \"nuget:\" lines: long spaces, open quotes, empty, trailing text", outcomes, "26.9/13");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures));
    }

    /// <summary>Linear time, by counting the characters the parser looks at: ten times the input, at most ten times
    /// the work (plus a constant), and a few looks per character.</summary>
    [Fact]
    public void ParsingWorkGrowsLinearlyWithTheLine()
    {
        long Work(string cell)
        {
            long before = Interlocked.Read(ref Directives.CharsExamined);
            try { Directives.Parse(cell, Packages); } catch (DirectiveException) { }
            return Interlocked.Read(ref Directives.CharsExamined) - before;
        }
        foreach (var ((small, error), (big, _)) in Cells(2_000).Zip(Cells(20_000)))
        {
            long ws = Work(small), wb = Work(big);
            Assert.True(wb <= 10 * ws + 100, $"{error}: {ws} looks for {small.Length} chars, {wb} for {big.Length}");
            Assert.True(wb <= 4L * big.Length, $"{error}: {wb} looks for {big.Length} chars");
        }
    }

    /// <summary>A completion request on a hostile line on shell, then kernel_info on control and on shell: all answer.</summary>
    [Fact]
    public void AHostileCompletionRequestDoesNotHoldUpTheKernel()
    {
        using var running = new RunningKernel();
        using var client = new KernelClient(running.Connection);
        var code = "#r \"nuget:" + new string(' ', 20_000 * FuzzTable.Scale);
        var completion = client.Send(client.Shell, "complete_request", new JsonObject { ["code"] = code, ["cursor_pos"] = code.Length });
        var info = client.Request(client.Control, "kernel_info_request", new JsonObject(), out _);
        Assert.Equal("kernel_info_reply", info.MsgType);
        var reply = client.Receive(client.Shell);
        Assert.NotNull(reply);
        Assert.Equal(completion.MsgId, reply!.ParentHeader["msg_id"]!.GetValue<string>());
        Assert.Equal("kernel_info_reply", client.Request(client.Shell, "kernel_info_request", new JsonObject(), out _).MsgType);
        FuzzTable.Record("kernel", "complete_request on a 20,000-space #r line, then kernel_info", 1, 1, "26.9");
    }
}
