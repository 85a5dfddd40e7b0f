"""`llmdoctor check --distributed`: one rank per node, reports over torch.distributed, one cluster report."""
