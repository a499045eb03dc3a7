"""Fine-tuning: where a fine-tune starts (`sources`), the plan executed on the model (`strategies`),
and starting an architecture from a trained run (`start_from`). LoRA adapters are layers:
`ftstudio.core.architecture.lora`."""
