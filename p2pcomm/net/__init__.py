"""p2pcomm package."""
