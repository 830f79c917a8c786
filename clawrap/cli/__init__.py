"""The command line (``clawrap serve | login | mock-upstream | doctor``) and the server
start-up that wires the layers together: the composition root.
"""
