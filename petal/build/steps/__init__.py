"""What each state of the build state machine does (statemachines/build.asl.json).

One module per Lambda step: lambdas/<step>.py calls petal/build/steps/<step>.py. They
make no AWS calls of their own: the adapters (petal.aws.ec2_builder,
petal.aws.ssm_commands, petal.build.table) take the boto3 clients the handler passes
in, so the workflow tests hand in moto's. Inputs and results are the JSON the state
machine carries:

    $.request    the execution input (petal/schemas/build_request.schema.json)
    $.settings   numbers from DefinitionSubstitutions
    $.build      prepare's result: the build, its seed and variant
    $.resources  launch's result: instance and volume
    $.ready      check_ready's result: {ready, attempt}
    $.bootstrap  what the callback sent with SendTaskSuccess
    $.snapshot   snapshot/check_snapshot's result: {snapshot_id, completed, attempt}
    $.failure    {<step>: {Error, Cause}}, written by the Catch of the failed step
    $.outcome    cleanup's result
"""
