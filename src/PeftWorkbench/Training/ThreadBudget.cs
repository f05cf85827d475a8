using System.Globalization;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// How libtorch's OpenMP threads wait, and how many there are, chosen by what else keeps the cores busy.
/// <para>
/// A ViT as small as mini leaves a second thread waiting in OpenMP barriers for much of each step. How it waits
/// decides the speed, measured here (2 cores, mini, batch 64, img/s of a lone process: inference / full step / LoRA
/// step): sleeping (PASSIVE) 1078 / 385 / 456, one thread 1150 / 372 / 405, bounded spinning (ACTIVE,
/// GOMP_SPINCOUNT 100k) 1895-2409 / 653-660 / 687-705. But two such spinning processes on the same 2 cores fall to
/// 71 / 24 / 53 each, against PASSIVE's 930 / 305 / 373: spinners starve each other.
/// </para>
/// <para>
/// So a process spins only when the cores are free for it: at start (<see cref="ChooseWaitPolicy"/>, before libtorch
/// loads, since libgomp reads the policy once) it samples /proc/stat for 50 ms and spins when other processes keep
/// less than half a core busy; and because the machine changes later, the trainer and the evaluation loops call
/// <see cref="Fit"/> before each epoch or pass, which drops to one thread (no team, nothing to spin for) while
/// others keep a core busy, and returns to the full count when they stop. Nothing adapts where the user chose:
/// OMP_WAIT_POLICY, OMP_NUM_THREADS or PEFT_THREADS set, fewer torch threads than cores set before the first pass,
/// or <see cref="Pin"/> called.
/// </para>
/// </summary>
public static class ThreadBudget
{
    /// <summary>The spin count of a spinning process (libgomp's GOMP_SPINCOUNT): about 1 ms of spinning per barrier.</summary>
    public const string SpinCount = "100000";

    /// <summary>Other processes' busy cores below this count as free cores.</summary>
    const double FreeBelow = 0.5;

    static readonly object gate = new();
    static bool adaptive;
    static int? baseline;
    static CpuSample? last;

    /// <summary>True when this process chose to spin and adapts its thread count (see the class summary).</summary>
    public static bool Adaptive => adaptive;

    /// <summary>
    /// The OpenMP environment for this process, decided once before libtorch loads: ("ACTIVE", SpinCount) when the
    /// cores are free, ("PASSIVE", null) otherwise, or null when the user set OMP_WAIT_POLICY. Turns adaptation on
    /// when it returns ACTIVE.
    /// </summary>
    internal static (string Policy, string? SpinCount)? ChooseWaitPolicy(Func<string, string?> getenv)
    {
        if (getenv("OMP_WAIT_POLICY") is { Length: > 0 }) return null;
        bool pinned = getenv("OMP_NUM_THREADS") is { Length: > 0 } || getenv("PEFT_THREADS") is { Length: > 0 };
        double? others = CpuSample.OthersBusy(TimeSpan.FromMilliseconds(50));
        if (pinned || others is not < FreeBelow) return ("PASSIVE", null);
        adaptive = true;
        return ("ACTIVE", getenv("GOMP_SPINCOUNT") is { Length: > 0 } ? null : SpinCount);
    }

    /// <summary>
    /// Before an epoch or an evaluation pass: the torch thread count for what the cores look like now (all of them
    /// when free, one while others keep a core busy). Does nothing unless this process spins and nobody pinned the
    /// count. Returns the count in force. Cheap: it reads /proc/stat at most every 200 ms and never sleeps.
    /// </summary>
    public static int Fit()
    {
        if (!adaptive) return get_num_threads();
        lock (gate)
        {
            int current = get_num_threads();
            if (baseline is null)
            {
                baseline = current;
                if (current < Environment.ProcessorCount) adaptive = false; // set lower on purpose before the first pass
            }
            // No "someone else changed it" check after that: libgomp keeps the count per OS thread, so a pass on another
            // thread can see an older count than ours without anyone having set it. To fix the count, call Pin.
            if (!adaptive) return current;

            var now = CpuSample.Read();
            if (now is null) return current;
            if (last is { } prev && (now.Value.At - prev.At).TotalMilliseconds < 200) return current;
            double? others = last is { } p ? CpuSample.OthersBusy(p, now.Value) : null;
            last = now;
            if (others is null) return current;
            int want = ThreadsFor(others.Value, Environment.ProcessorCount, baseline.Value);
            if (want != current) set_num_threads(want);
            return want;
        }
    }

    /// <summary>Sets the torch thread count for good: no more adapting in this process (what a notebook cell or a
    /// --threads option should call instead of torch.set_num_threads, which the next epoch would override).</summary>
    public static void Pin(int threads)
    {
        CheckPerCore(threads, "threads");
        lock (gate) { adaptive = false; set_num_threads(threads); }
    }

    /// <summary>The one bound of torch threads and worker processes: throws unless 1 &lt;= <paramref name="count"/> &lt;=
    /// <paramref name="cores"/> (null: the cores this process may use). More threads or workers than cores only wait on
    /// each other, and --threads 100000 started thousands of threads and printed nothing. <paramref name="what"/> names
    /// the value in the message ("threads", "workers (PEFT_WORKERS)").</summary>
    public static void CheckPerCore(int count, string what, int? cores = null)
    {
        int c = cores ?? Environment.ProcessorCount;
        if (count < 1 || count > c)
            throw new ArgumentException($"{what} {count}: give 1 to {c} (the cores this machine lets this process use).");
    }

    /// <summary>All <paramref name="baseline"/> threads while other processes keep under half a core busy, else the
    /// cores they leave (at least one).</summary>
    public static int ThreadsFor(double othersBusy, int cores, int baseline) =>
        othersBusy < FreeBelow ? baseline : Math.Clamp(cores - (int)Math.Floor(othersBusy + FreeBelow), 1, baseline);
}

/// <summary>One reading of the machine's busy CPU time (all of /proc/stat's cpu line but idle and iowait) and this
/// process's own (/proc/self/stat utime + stime), in clock ticks.</summary>
internal readonly record struct CpuSample(DateTime At, long Busy, long Self)
{
    public static CpuSample? Read()
    {
        try
        {
            var at = DateTime.UtcNow;
            var stat = File.ReadAllText("/proc/stat");
            if (CountCpus(stat) != Environment.ProcessorCount) return null; // a container seeing the host's CPUs: can't judge
            return new CpuSample(at, ParseBusy(stat), ParseSelf(File.ReadAllText("/proc/self/stat")));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { return null; }
    }

    /// <summary>Cores kept busy by other processes between two readings (null: not measurable here).</summary>
    public static double? OthersBusy(CpuSample a, CpuSample b)
    {
        double seconds = (b.At - a.At).TotalSeconds;
        if (seconds <= 0) return null;
        return Math.Max(0, (b.Busy - a.Busy - (b.Self - a.Self)) / TicksPerSecond / seconds);
    }

    /// <summary>Samples for <paramref name="window"/> (sleeping).</summary>
    public static double? OthersBusy(TimeSpan window)
    {
        if (Read() is not { } a) return null;
        Thread.Sleep(window);
        return Read() is { } b ? OthersBusy(a, b) : null;
    }

    // USER_HZ: 100 on every Linux ABI .NET runs on.
    const double TicksPerSecond = 100;

    /// <summary>user + nice + system + irq + softirq + steal of the aggregate "cpu" line.</summary>
    internal static long ParseBusy(string procStat)
    {
        var f = procStat[..procStat.IndexOf('\n')].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f[0] != "cpu") throw new FormatException("/proc/stat does not start with the cpu line");
        long V(int i) => i < f.Length ? long.Parse(f[i], CultureInfo.InvariantCulture) : 0;
        return V(1) + V(2) + V(3) + V(6) + V(7) + V(8);
    }

    /// <summary>utime + stime: fields 14 and 15, counted after the ')' that ends the command name.</summary>
    internal static long ParseSelf(string selfStat)
    {
        var f = selfStat[(selfStat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
    }

    internal static int CountCpus(string procStat) =>
        procStat.Split('\n').Count(l => l.StartsWith("cpu", StringComparison.Ordinal) && l.Length > 3 && char.IsDigit(l[3]));
}
