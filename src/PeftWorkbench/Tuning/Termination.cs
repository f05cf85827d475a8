namespace PeftWorkbench.Tuning;

/// <summary>
/// SIGTERM (scancel, a slurm time limit, `kill`) and SIGINT (Ctrl+C) cancel <see cref="Token"/> instead of ending the
/// process at once, so the running trial stops at its next step, records nothing and releases its claim. The
/// command then exits with <see cref="ExitCode"/> (128 + the signal, as a shell reports it). System.CommandLine's
/// own handler is not in place while a synchronous action runs, so commands that run trials hold one of these.
/// </summary>
public sealed class Termination : IDisposable
{
    readonly CancellationTokenSource cts;
    readonly System.Runtime.InteropServices.PosixSignalRegistration[] registrations;
    public int? Signal { get; private set; }
    public CancellationToken Token => cts.Token;
    public int ExitCode => stopCode != 0 ? stopCode : 128 + (Signal ?? 2);
    /// <summary>A signal or <see cref="Stop"/> cancelled the token.</summary>
    public bool Stopped => Signal is not null || stopCode != 0;
    int stopCode; // 0: not stopped

    /// <summary>The parent is gone: stop at the next step as a signal would, and end the process with <paramref name="exitCode"/>
    /// after <see cref="StopGrace"/> if the running step does not return by then (nothing waits for it any more).</summary>
    public void Stop(string why, int exitCode)
    {
        if (Signal is not null || Interlocked.CompareExchange(ref stopCode, exitCode, 0) != 0) return;
        Console.Error.WriteLine($"{why}: stopping at the next step; the running trial is not recorded and its claim is released");
        cts.Cancel();
        var hard = new Thread(() => { Thread.Sleep(StopGrace); System.Environment.Exit(exitCode); }) { IsBackground = true };
        hard.Start();
    }

    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    public Termination(CancellationToken outer)
    {
        cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
        registrations = new[] { (System.Runtime.InteropServices.PosixSignal.SIGTERM, 15), (System.Runtime.InteropServices.PosixSignal.SIGINT, 2) }
            .Select(s => System.Runtime.InteropServices.PosixSignalRegistration.Create(s.Item1, ctx =>
            {
                ctx.Cancel = true;
                Signal ??= s.Item2;
                Console.Error.WriteLine($"signal {s.Item2} ({s.Item1}): stopping at the next step; the running trial is not recorded and its claim is released");
                cts.Cancel();
            })).ToArray();
    }

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        cts.Dispose();
    }
}
