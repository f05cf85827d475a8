using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace PeftWorkbench.Checkpoints;

/// <summary>
/// Writes a state dict as a PyTorch zip checkpoint (.pth/.bin/.pt) that torch.load(path, weights_only=True)
/// reads, through TorchSharp.PyBridge's pickler, wrapped against its known faults (../shared/ENVIRONMENT.md):
/// it throws part-way on non-contiguous tensors and writes views at an offset so that torch.load fails, so
/// every such tensor (and any not on the CPU) goes in as a contiguous clone, and a dense CPU tensor as a
/// detached alias of the same bytes (no copy of the model). Its path overload opens with File.OpenWrite (a
/// larger old file keeps its tail), so it gets a stream to a temp file instead, which is read back with our
/// own reader and compared bit for bit before it is renamed into place. PyBridge is never used to read.
/// </summary>
public static class TorchExport
{
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        foreach (var (name, t) in stateDict)
            if (!IsExportable(t.dtype)) throw new NotSupportedException($"{path}: tensor '{name}' has dtype {t.dtype}, which is not written to .pth here");
        var safe = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (name, t) in stateDict) safe[name] = Safe(t);
            AtomicFile.Write(path, fs => PyTorchPickler.PickleStateDict(new KeepOpen(fs), safe), tmp => Verify(tmp, path, safe));
        }
        finally { foreach (var t in safe.Values) t.Dispose(); }
    }

    static bool IsExportable(ScalarType t) => t is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16
        or ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool;

    /// <summary>A tensor PyBridge writes correctly: on the CPU, contiguous, starting at its storage's first byte.</summary>
    static Tensor Safe(Tensor t)
    {
        using var detached = t.detach();
        if (detached.device_type == DeviceType.CPU && detached.is_contiguous() && detached.storage_offset() == 0) return detached.alias();
        using var cpu = detached.cpu();
        return cpu.contiguous().clone();
    }

    /// <summary>Reads the written file with our own reader: the same names, shapes, dtypes and bytes, or it is not renamed into place.</summary>
    static void Verify(string tmp, string path, Dictionary<string, Tensor> expected)
    {
        using var ckpt = TorchCheckpoint.Open(tmp);
        var sd = ckpt.StateDict();
        var missing = expected.Keys.Where(k => !sd.ContainsKey(k)).ToList();
        var extra = sd.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        if (missing.Count + extra.Count > 0)
            throw new IOException($"{path}: the written checkpoint has other keys than the state dict (missing: {string.Join(", ", missing.Take(5))}; extra: {string.Join(", ", extra.Take(5))}); the file was not replaced");
        foreach (var (name, want) in expected)
        {
            var r = sd[name];
            if (r.DType != want.dtype || !r.Shape.SequenceEqual(want.shape))
                throw new IOException($"{path}: tensor '{name}' was written as {r.DType} [{string.Join(", ", r.Shape)}], not {want.dtype} [{string.Join(", ", want.shape)}]; the file was not replaced");
            using var back = ckpt.Read(r, name);
            if (!back.bytes.SequenceEqual(want.bytes))
                throw new IOException($"{path}: tensor '{name}' reads back with other values than were written; the file was not replaced");
        }
    }

    /// <summary>PyBridge disposes the stream it is given (its ZipArchive owns it); the temp file must stay open to be flushed.</summary>
    sealed class KeepOpen(Stream inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => inner.SetLength(value);
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
        protected override void Dispose(bool disposing) { if (disposing) inner.Flush(); }
    }
}
