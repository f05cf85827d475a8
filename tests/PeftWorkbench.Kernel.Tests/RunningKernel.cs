using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>A kernel in this process on fresh loopback ports, served on its own thread.</summary>
sealed class RunningKernel : IDisposable
{
    public readonly ConnectionInfo Connection = KernelClient.FreeConnection();
    public readonly JupyterKernel Kernel;
    public readonly Thread Thread;
    public RunningKernel()
    {
        Kernel = new JupyterKernel(Connection, Path.GetTempPath(), TextWriter.Null);
        Thread = new Thread(Kernel.Run) { IsBackground = true };
        Thread.Start();
    }
    public void Dispose()
    {
        if (Thread.IsAlive)
        {
            using var c = new DealerSocket(Connection.Address(Connection.ControlPort));
            var m = new Message { Header = Message.NewHeader("shutdown_request", "cleanup"), Content = new JsonObject { ["restart"] = false } };
            c.SendMultipartBytes(new WireCodec(Connection.Key).Encode(m));
            Thread.Join(TimeSpan.FromSeconds(10));
        }
        Kernel.Dispose();
    }
}
