//! ecs-emulator: an emulator of the ECS ENI OpenAPI and the instance metadata service.
