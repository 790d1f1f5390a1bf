"""Models: nn.Modules only (acoustic model, vocoder, shared layers); constructors do no I/O."""
